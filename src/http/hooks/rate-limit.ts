import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { asError, GatewayError } from '../../errors.js'
import type { Metrics } from '../../observability/metrics.js'
import type { RateLimiter, TenantLimits } from '../../state/rate-limiter.js'

export interface RateLimitOptions {
  limits: TenantLimits
  limiter: RateLimiter
  metrics: Metrics
}

/** Events a request carries: a batch counts its items. Set by the route before the limit is taken. */
function eventsOf (request: FastifyRequest): number {
  if (request.routeOptions.url !== '/v1/events') return 1
  const body = request.body
  const events = typeof body === 'object' && body !== null && 'events' in body ? body.events : undefined
  return Array.isArray(events) ? events.length : 1
}

/**
 * Per-tenant rate limits on the routes that take events, through @fastify/rate-limit: its hook,
 * RateLimit-* and Retry-After headers; our store behind it (the state store's buckets, shared by
 * replicas on Redis). The limit is taken after validation (preHandler), so a batch is counted by
 * its events; a batch larger than the tenant's burst takes the whole burst. When the store
 * cannot be reached, events are not limited (the failure is counted in gateway_state_errors_total).
 * Routes with `config.rateLimit: false` (read-back) are not limited; health, metrics and docs are
 * outside this plugin's scope.
 */
export async function rateLimits (app: FastifyInstance, opts: RateLimitOptions): Promise<void> {
  const { limits, limiter, metrics } = opts
  // The key carries the tenant and the request's events: @fastify/rate-limit's store sees only keys.
  const split = (key: string) => {
    const at = key.indexOf(':')
    return { events: Number(key.slice(0, at)), tenant: key.slice(at + 1) }
  }
  class Store implements FastifyRateLimitStore {
    incr (key: string, callback: (err: Error | null, result?: { current: number, ttl: number }) => void): void {
      const { events, tenant } = split(key)
      const limit = limits.of(tenant)
      if (limit === undefined) return callback(null, { current: 0, ttl: 0 })
      limiter.take(tenant, events, limit).then(taken => {
        // As the plugin reads it: `current` over `max` (the burst) is a refusal; `ttl` is the wait.
        const used = Math.ceil(taken.fullInMs * limit.perSecond / 1000)
        callback(null, taken.allowed
          ? { current: Math.min(used, limit.burst), ttl: taken.fullInMs }
          : { current: limit.burst + 1, ttl: taken.retryInMs })
      }, (err: unknown) => {
        metrics.stateErrors.inc({ operation: 'rate_limit' })
        callback(asError(err))
      })
    }

    child (): Store {
      return this
    }
  }

  await app.register(rateLimit, {
    hook: 'preHandler',
    enableDraftSpec: true,
    skipOnError: true,
    store: Store,
    keyGenerator: request => `${eventsOf(request)}:${request.evgContext?.tenantId ?? ''}`,
    allowList: request => request.evgContext === undefined || limits.of(request.evgContext.tenantId) === undefined,
    max: request => limits.of(request.evgContext?.tenantId ?? '')?.burst ?? 0,
    onExceeded: request => { metrics.rateLimited.inc(eventsOf(request)) },
    errorResponseBuilder: (request, context) => {
      const limit = limits.of(request.evgContext?.tenantId ?? '')
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000))
      const allowed = `${limit?.perSecond ?? 0} events per second (${limit?.burst ?? 0} at once)`
      return new GatewayError('EVG_RATE_LIMITED', `this tenant may send ${allowed}; retry in ${seconds} s`, { retryAfter: seconds })
    }
  })
}
