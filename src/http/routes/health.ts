import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Broker } from '../../brokers/broker.js'
import { healthOf } from '../../brokers/health.js'
import type { Metrics } from '../../observability/metrics.js'
import type { Spool } from '../../spool/index.js'
import type { StateStore } from '../../state/index.js'
import { messageOf } from '../../errors.js'
import { noSecurity, problemResponses } from './schemas.js'

const ReadySchema = Type.Object({
  status: Type.Enum(['ready', 'degraded', 'unavailable', 'draining'], {
    description: 'ready: every destination (its broker, and its outbox when spooled) and the state store are up; ' +
      'degraded: some destinations can take events, or the state store is down; ' +
      'unavailable: no destination can take events; draining: shutting down. ' +
      'A spooled destination takes events while its outbox is up, its broker down or not'
  }),
  destinations: Type.Array(Type.Object({
    name: Type.String(),
    broker: Type.String(),
    up: Type.Boolean({ description: 'Its broker is usable' }),
    detail: Type.Optional(Type.String({ description: 'Why it is down' })),
    delivery: Type.Enum(['sync', 'spool']),
    outbox: Type.Optional(Type.Object({
      up: Type.Boolean({ description: 'The outbox takes events' }),
      depth: Type.Integer({ description: 'Events waiting for this destination' }),
      oldestAgeSeconds: Type.Number({ description: 'Age of the oldest waiting event; 0 when none' }),
      deadLetters: Type.Integer(),
      detail: Type.Optional(Type.String({ description: 'Why it is down' }))
    }, { description: 'Spooled destinations only' }))
  })),
  state: Type.Object({
    store: Type.Enum(['sqlite', 'redis'], { description: 'Where idempotency keys and rate limits are kept (STATE_URL)' }),
    up: Type.Boolean({ description: 'When false, keyed requests get 503 EVG_STATE_UNAVAILABLE; others are served' }),
    detail: Type.Optional(Type.String({ description: 'Why it is down' }))
  })
}, { description: 'Each destination with its state, and the state store\'s', 'x-component': 'Readiness' })

export interface HealthOptions {
  destinations: readonly { name: string, broker: Broker, mode: 'sync' | 'spool' }[]
  /** Present when some destination is spooled. */
  spool?: Spool
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
  const check = async () => {
    const outboxes = opts.spool === undefined ? undefined : await outboxStates(opts.spool)
    return await Promise.all(destinations.map(async d => {
      const health = await healthOf(d.broker)
      metrics.brokerUp.set({ destination: d.name, broker: d.broker.name }, health.up ? 1 : 0)
      const outbox = d.mode === 'spool' ? outboxes?.get(d.name) : undefined
      return {
        name: d.name,
        broker: d.broker.name,
        up: health.up,
        ...(health.detail === undefined ? {} : { detail: health.detail }),
        delivery: d.mode,
        ...(outbox === undefined ? {} : { outbox }),
        // Takes events: a sync destination when its broker does, a spooled one when its outbox does.
        accepting: outbox === undefined ? health.up : outbox.up
      }
    }))
  }

  app.get('/health/live', {
    schema: {
      tags: ['operations'],
      summary: 'The process is running',
      operationId: 'live',
      security: noSecurity,
      response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Alive' }), ...problemResponses }
    },
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
        200: {
          description: 'Ready or degraded: at least one destination can take events',
          content: { 'application/json': { schema: ReadySchema } }
        },
        503: { description: 'Unavailable: no destination can take events', content: { 'application/json': { schema: ReadySchema } } },
        ...problemResponses
      }
    },
    logLevel: 'warn'
  }, async (_request, reply) => {
    const checked = await check()
    const state = stateOf()
    const accepting = checked.filter(s => s.accepting).length
    const allUp = checked.every(s => s.up && s.accepting)
    const states = checked.map(({ accepting: _, ...s }) => s)
    if (opts.draining()) return reply.code(503).send({ status: 'draining', destinations: states, state })
    // A state store that is down refuses keyed requests only: degraded, still in rotation.
    const status = allUp && state.up ? 'ready' : accepting > 0 ? 'degraded' : 'unavailable'
    return reply.code(accepting > 0 ? 200 : 503).send({ status, destinations: states, state })
  })

  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics',
      operationId: 'metrics',
      security: noSecurity,
      // The text is sent as it is (a string with its own content type), never serialized.
      response: {
        200: { description: 'The gateway_* metrics in the Prometheus text format', content: { 'text/plain': { schema: Type.String() } } },
        ...problemResponses
      }
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

interface OutboxHealth { up: boolean, depth: number, oldestAgeSeconds: number, deadLetters: number, detail?: string }

/** Each spooled destination's outbox as readiness reports it; a store that cannot be read is down. */
async function outboxStates (spool: Spool): Promise<Map<string, OutboxHealth>> {
  const down = spool.store.down()
  let states
  try {
    // Sets the outbox gauges as it reads them, as the broker checks set gateway_broker_up: one
    // read per scrape. An outbox that cannot be read leaves them as they were.
    states = await spool.observe()
  } catch (err) {
    const unread: OutboxHealth = { up: false, depth: 0, oldestAgeSeconds: 0, deadLetters: 0, detail: messageOf(err) }
    return new Map(spool.destinations.map(name => [name, { ...unread }]))
  }
  return new Map(states.map(s => [s.destination, {
    up: down === undefined,
    depth: s.depth,
    oldestAgeSeconds: s.oldestAgeSeconds,
    deadLetters: s.deadLetters,
    ...(down === undefined ? {} : { detail: down })
  }]))
}
