import { randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type { Config } from '../../config/index.js'
import { GatewayError } from '../../errors.js'
import { HEADERS } from './headers.js'
import { isValidTenantId, normalizeTenantId } from '../../config/tenant.js'
import type { RequestContext } from '../../envelopes/event.js'
import { readTraceparent, readTracestate } from '../../observability/trace-context.js'

export type { RequestContext }

// Visible ASCII only: these values travel in AMQP headers and SQS attributes and reach logs.
const OPAQUE = /^[\x21-\x7e]{1,128}$/

function single (headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name]
  if (Array.isArray(value)) throw new GatewayError('EVG_BAD_CONTEXT', `${name} must be sent once`)
  return value === undefined || value === '' ? undefined : value
}

function opaque (headers: IncomingHttpHeaders, name: string, fallback?: string): string | undefined {
  const value = single(headers, name) ?? fallback
  if (value !== undefined && !OPAQUE.test(value)) {
    throw new GatewayError('EVG_BAD_CONTEXT', `${name} must be 1 to 128 visible ASCII characters`)
  }
  return value
}

/** The correlation id to echo back; a missing or unusable one is replaced, never an error. */
export function correlationIdFrom (headers: IncomingHttpHeaders): string {
  const value = headers[HEADERS.correlation]
  return typeof value === 'string' && OPAQUE.test(value) ? value : randomUUID()
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's traceparent once checked (callerTraceparent), in version 00: null when it sent none, or none valid. */
    checkedTraceparent: string | null | undefined
  }
}

/**
 * The caller's W3C trace context, checked once per request whoever asks first (the server span,
 * the event's context); an invalid one is dropped, as W3C Trace Context asks, rather than refused.
 * A later version than 00 is read by its first fields and goes on as version 00 (readTraceparent).
 */
export function callerTraceparent (request: FastifyRequest): string | undefined {
  if (request.checkedTraceparent === undefined) {
    const value = request.headers[HEADERS.traceparent]
    request.checkedTraceparent = (typeof value === 'string' ? readTraceparent(value) : undefined) ?? null
  }
  return request.checkedTraceparent ?? undefined
}

/** Tenant, user, account and trace context of a request; EVG_BAD_CONTEXT when unusable. */
export function contextFromHeaders (
  headers: IncomingHttpHeaders,
  correlationId: string,
  traceparent: string | undefined,
  config: Config
): RequestContext {
  const mock = config.ALLOW_MOCK_CONTEXT
  const tenantId = single(headers, HEADERS.tenant) ?? (mock ? config.MOCK_TENANT_ID : undefined)
  if (tenantId === undefined) throw new GatewayError('EVG_BAD_CONTEXT', `${HEADERS.tenant} header is required`)
  if (!isValidTenantId(tenantId, config.TENANT_ID_FORMAT)) {
    throw new GatewayError('EVG_BAD_CONTEXT', config.TENANT_ID_FORMAT === 'uuid'
      ? `${HEADERS.tenant} must be a UUID`
      : `${HEADERS.tenant} must be a slug: letters, digits, '.', '_' or '-', at most 64`)
  }
  const userId = opaque(headers, HEADERS.user, mock ? config.MOCK_USER_ID : undefined)
  const accountId = opaque(headers, HEADERS.account)
  return {
    tenantId: normalizeTenantId(tenantId, config.TENANT_ID_FORMAT),
    correlationId,
    ...(userId === undefined ? {} : { userId }),
    ...(accountId === undefined ? {} : { accountId }),
    ...(traceparent === undefined ? {} : { traceparent, ...tracestateOf(headers) })
  }
}

/** The caller's tracestate, read only beside a valid traceparent (W3C: without one it is ignored). */
function tracestateOf (headers: IncomingHttpHeaders): { tracestate?: string } {
  const tracestate = readTracestate(headers[HEADERS.tracestate])
  return tracestate === undefined ? {} : { tracestate }
}
