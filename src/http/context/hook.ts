import type { FastifyInstance, FastifyRequest } from 'fastify'
import { forbidden, type ApiKey, type ApiKeys } from './api-keys.js'
import type { Config } from '../../config/index.js'
import { callerTraceparent, contextFromHeaders, correlationIdFrom, type RequestContext } from './request-context.js'
import { GatewayError } from '../../errors.js'
import { HEADERS } from './headers.js'
import { checkIdempotencyKey } from '../../state/idempotency.js'
import { addLogFields } from '../hooks/access-log.js'
import type { Metrics } from '../../observability/metrics.js'

declare module 'fastify' {
  interface FastifyRequest {
    evgContext: RequestContext | undefined
    apiKey: ApiKey | undefined
  }
  interface FastifyContextConfig {
    eventType?: string
    /** A route that takes events: its refusals count in gateway_events_rejected_total. */
    publishes?: boolean
  }
}

/** The refusal when the request's API key may not publish this type (none without keys). */
export function typeRefusal (request: FastifyRequest, type: string): GatewayError | undefined {
  return request.apiKey !== undefined && !request.apiKey.allowsType(type) ? forbidden(`events of type ${type}`) : undefined
}

/**
 * The request's Idempotency-Key header, checked (the route's header schema only documents it);
 * undefined without one. Read by the publishing routes once their body is valid and the tenant's
 * rate limit taken, so those refusals come first.
 */
export function idempotencyKeyOf (request: FastifyRequest): string | undefined {
  const key = request.headers[HEADERS.idempotencyKey]
  if (key === undefined) return undefined
  if (Array.isArray(key)) throw new GatewayError('EVG_BAD_CONTEXT', 'Idempotency-Key must be sent once')
  checkIdempotencyKey(key)
  return key
}

/** The context of a request that passed the hook below. */
export function contextOf (request: FastifyRequest): RequestContext {
  if (request.evgContext === undefined) throw new GatewayError('EVG_INTERNAL', 'a route that publishes ran without its context hook')
  return request.evgContext
}

/**
 * Correlation id, API key and tenant context for every event route, before the body is even
 * parsed: a bad tenant is refused whatever the body. With idempotencyKeyOf, these are the only
 * checks of the headers (the routes' header schemas document them; app.ts does not run them).
 */
export function addContextHook (app: FastifyInstance, opts: { config: Config, metrics: Metrics, apiKeys?: ApiKeys }): void {
  const { config, metrics, apiKeys } = opts
  app.decorateRequest('evgContext', undefined)
  app.decorateRequest('apiKey', undefined)
  app.addHook('onRequest', async (request, reply) => {
    const correlationId = correlationIdFrom(request.headers)
    reply.header(HEADERS.correlation, correlationId)
    const type = request.routeOptions.config.eventType
    if (type !== undefined) metrics.received.inc({ type })
    // The type is on the access line of every request to its route, taken or refused.
    addLogFields(request, type === undefined ? { correlationId } : { correlationId, type })
    if (apiKeys !== undefined) {
      const key = apiKeys.authenticate(request.headers)
      request.apiKey = key
      addLogFields(request, { apiKey: key.name })
    }
    const ctx = contextFromHeaders(request.headers, correlationId, callerTraceparent(request), config)
    request.evgContext = ctx
    addLogFields(request, { tenantId: ctx.tenantId })
    if (request.apiKey !== undefined && !request.apiKey.allowsTenant(ctx.tenantId)) throw forbidden('for this tenant')
    const refused = type === undefined ? undefined : typeRefusal(request, type)
    if (refused !== undefined) throw refused
  })
}
