import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import type { ApiKeys } from '../../context/api-keys.js'
import type { EventReader } from '../../../brokers/broker.js'
import type { Catalog } from '../../../catalog/index.js'
import type { Config } from '../../../config/index.js'
import type { FanOut } from '../../../delivery/fan-out.js'
import type { Intake } from '../../../delivery/intake.js'
import { problem } from '../../../errors.js'
import type { Metrics } from '../../../observability/metrics.js'
import { sendProblem } from '../../problems/index.js'
import { rateLimits, type RateLimitOptions } from '../../hooks/rate-limit.js'
import { batchRoute } from './batch.js'
import { addContextHook } from '../../context/hook.js'
import { readBackRoute } from './read-back.js'
import { singleRoutes } from './single.js'

export interface EventsRouteOptions {
  config: Config
  catalog: Catalog
  fanOut: FanOut
  intake: Intake
  metrics: Metrics
  /** The local destination, when there is one: GET /v1/events reads from it. */
  reader?: EventReader
  /** Present when API_KEYS_FILE is set: every request then needs a key. */
  apiKeys?: ApiKeys
  /** Per-tenant rate limits, when any tenant has one. */
  rateLimits?: Omit<RateLimitOptions, 'metrics'> | undefined
  /** Load shedding for the event routes (health and metrics stay reachable). */
  pressure: { maxEventLoopDelay: number, maxHeapUsedBytes: number, sampleInterval: number }
}

/** Everything under /v1/events, in one encapsulated context with its own hooks. */
export async function eventRoutes (app: FastifyInstance, opts: EventsRouteOptions): Promise<void> {
  const { metrics } = opts
  // Shed load before the process gets into trouble: a blocked event loop or a heap near its
  // limit answers 503 EVG_OVERLOADED at once, so clients back off instead of timing out.
  // The event loop delay sampled just after start-up measures the start-up itself (loading and
  // compiling the code, more so on a busy machine): not a reason to refuse the first events.
  let startedAt = Infinity
  app.addHook('onReady', async () => { startedAt = Date.now() })
  await app.register(underPressure, {
    ...opts.pressure,
    pressureHandler: (request, reply, type, value) => {
      if (type === 'eventLoopDelay' && Date.now() - startedAt < 2 * opts.pressure.sampleInterval) return
      request.log.warn({ pressure: type, value }, 'shedding load')
      sendProblem(reply, problem('EVG_OVERLOADED', `the gateway is overloaded (${type}); retry shortly`), 1)
    }
  })
  addContextHook(app, opts)
  if (opts.rateLimits !== undefined) await rateLimits(app, { ...opts.rateLimits, metrics })
  singleRoutes(app, opts)
  batchRoute(app, opts)
  readBackRoute(app, opts)
}
