import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Broker } from '../brokers/broker.js'
import type { Metrics } from '../metrics.js'
import type { StateStore } from '../state/index.js'
import { noSecurity, problemResponses } from './schemas.js'

const ReadySchema = Type.Object({
  status: Type.Enum(['ready', 'degraded', 'unavailable', 'draining'], { description: 'ready: every destination and the state store are up; degraded: some destinations are, or the state store is down; unavailable: no destination is; draining: shutting down' }),
  destinations: Type.Array(Type.Object({
    name: Type.String(),
    broker: Type.String(),
    up: Type.Boolean(),
    detail: Type.Optional(Type.String({ description: 'Why it is down' }))
  })),
  state: Type.Object({
    store: Type.Enum(['sqlite', 'redis'], { description: 'Where idempotency keys and rate limits are kept (STATE_URL)' }),
    up: Type.Boolean({ description: 'When false, keyed requests get 503 EVG_STATE_UNAVAILABLE; others are served' }),
    detail: Type.Optional(Type.String({ description: 'Why it is down' }))
  })
}, { description: 'Each destination with its state, and the state store\'s', 'x-component': 'Readiness' })

export interface HealthOptions {
  destinations: readonly { name: string, broker: Broker }[]
  state: Pick<StateStore, 'kind' | 'down'>
  metrics: Metrics
  /** True once shutdown has begun: load balancers must stop sending before the server closes. */
  draining: () => boolean
}

export async function healthRoutes (app: FastifyInstance, opts: HealthOptions): Promise<void> {
  const { destinations, metrics } = opts
  const stateOf = () => {
    const down = opts.state.down()
    metrics.stateUp.set({ store: opts.state.kind }, down === undefined ? 1 : 0)
    return { store: opts.state.kind, up: down === undefined, ...(down === undefined ? {} : { detail: down }) }
  }
  const check = () => Promise.all(destinations.map(async d => {
    const health = await d.broker.health()
    metrics.brokerUp.set({ destination: d.name, broker: d.broker.name }, health.up ? 1 : 0)
    return { name: d.name, broker: d.broker.name, up: health.up, ...(health.detail === undefined ? {} : { detail: health.detail }) }
  }))

  app.get('/health/live', {
    schema: { tags: ['operations'], summary: 'The process is running', operationId: 'live', security: noSecurity, response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Alive' }), ...problemResponses } },
    logLevel: 'warn'
  }, async () => ({ status: 'ok' as const }))

  // 503 only when no destination can take events: a gateway whose RabbitMQ is down still
  // serves the types routed to SQS, and each destination's state is in the body.
  app.get('/health/ready', {
    schema: {
      tags: ['operations'],
      summary: 'The gateway can take events: each destination with its state',
      operationId: 'ready',
      security: noSecurity,
      response: {
        200: { description: 'Ready or degraded: at least one destination can take events', content: { 'application/json': { schema: ReadySchema } } },
        503: { description: 'Unavailable: no destination can take events', content: { 'application/json': { schema: ReadySchema } } },
        ...problemResponses
      }
    },
    logLevel: 'warn'
  }, async (_request, reply) => {
    const states = await check()
    const state = stateOf()
    const up = states.filter(s => s.up).length
    if (opts.draining()) return reply.code(503).send({ status: 'draining', destinations: states, state })
    // A state store that is down refuses keyed requests only: degraded, still in rotation.
    const status = up === states.length && state.up ? 'ready' : up > 0 ? 'degraded' : 'unavailable'
    return reply.code(up > 0 ? 200 : 503).send({ status, destinations: states, state })
  })

  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics',
      operationId: 'metrics',
      security: noSecurity,
      // The text is sent as it is (a string with its own content type), never serialized.
      response: { 200: { description: 'The gateway_* metrics in the Prometheus text format', content: { 'text/plain': { schema: Type.String() } } }, ...problemResponses }
    },
    logLevel: 'warn'
  }, async (_request, reply) => {
    await check()
    stateOf()
    await Promise.all(destinations.map(async d => {
      const unrouted = await d.broker.unroutedCount?.()
      if (unrouted !== undefined) metrics.unrouted.set({ destination: d.name, broker: d.broker.name }, unrouted)
    }))
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
