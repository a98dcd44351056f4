import { SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api'
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_SCHEME
} from '@opentelemetry/semantic-conventions'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { callerTraceparent } from '../context/request-context.js'
import { callerContext, readTracestate } from '../../observability/trace-context.js'
import { HEADERS } from '../context/headers.js'
import { addLogFields } from './access-log.js'

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The context of the request's server span, which producer spans start in; undefined when
     * tracing is off and on routes that are not traced.
     */
    traceContext: Context | undefined
  }
}

/** Ids the access log line already carries, under the names spans give them. Never payload fields. */
const FROM_LOG_FIELDS: [logField: string, attribute: string][] = [
  ['tenantId', 'evg.tenant_id'],
  ['correlationId', 'evg.correlation_id'],
  ['eventId', 'evg.event_id'],
  ['code', 'evg.error_code']
]

function finish (span: Span, request: FastifyRequest, status: number): void {
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status)
  const fields = request.logFields ?? {}
  for (const [field, attribute] of FROM_LOG_FIELDS) {
    const value = fields[field]
    if (typeof value === 'string') span.setAttribute(attribute, value)
  }
  // A refusal (4xx) is the client's: only the gateway's own failures mark the span as an error.
  if (status >= 500) {
    span.setAttribute(ATTR_ERROR_TYPE, typeof fields.code === 'string' ? fields.code : String(status))
    span.setStatus({ code: SpanStatusCode.ERROR })
  }
  span.end()
}

/**
 * A server span per request to the API (`/v1/...`), child of the caller's `traceparent`; health,
 * metrics and docs are left out (probes every few seconds would drown the traces). To be
 * registered on the root before the hooks that refuse requests (shutdown, bodies in flight, load
 * shedding), so that those have their span too, and before the access log line, which gets the
 * trace id. Does nothing when tracing is off.
 */
async function requestTracingPlugin (app: FastifyInstance, { tracer }: { tracer: Tracer | undefined }): Promise<void> {
  app.decorateRequest('traceContext', undefined)
  app.decorateRequest('checkedTraceparent', undefined)
  if (tracer === undefined) return
  const spanOf = (request: FastifyRequest) => request.traceContext === undefined ? undefined : trace.getSpan(request.traceContext)

  app.addHook('onRequest', (request, _reply, done) => {
    const route = request.routeOptions.url
    if (route?.startsWith('/v1/') === true) {
      const type = request.routeOptions.config.eventType
      const parent = callerContext(callerTraceparent(request), readTracestate(request.headers[HEADERS.tracestate]))
      const span = tracer.startSpan(`${request.method} ${route}`, {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: request.method,
          [ATTR_HTTP_ROUTE]: route,
          [ATTR_URL_SCHEME]: request.protocol,
          ...(type === undefined ? {} : { 'evg.event_type': type })
        }
      }, parent)
      request.traceContext = trace.setSpan(parent, span)
    }
    done()
  })
  app.addHook('onResponse', (request, reply, done) => {
    const span = spanOf(request)
    if (span !== undefined) {
      // The access log line names the trace, so that a log search leads to it.
      addLogFields(request, { traceId: span.spanContext().traceId })
      if (span.isRecording()) finish(span, request, reply.statusCode)
    }
    done()
  })
  // The client went away before its answer: the span ends now, as the answer may never be written.
  app.addHook('onRequestAbort', (request, done) => {
    const span = spanOf(request)
    if (span?.isRecording() === true) {
      span.setAttribute('evg.client_aborted', true)
      span.end()
    }
    done()
  })
}

export const requestTracing = fp(requestTracingPlugin, { name: 'evg-request-tracing' })
