import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Broker } from '../brokers/broker.js'
import type { Metrics } from '../metrics.js'

const ReadySchema = Type.Object({
  status: Type.Enum(['ready', 'unavailable']),
  broker: Type.Object({ name: Type.String(), up: Type.Boolean(), detail: Type.Optional(Type.String()) })
})

export async function healthRoutes (app: FastifyInstance, opts: { broker: Broker, metrics: Metrics }): Promise<void> {
  const { broker, metrics } = opts
  app.get('/health/live', {
    schema: { tags: ['operations'], summary: 'The process is running', operationId: 'live', response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
    logLevel: 'warn'
  }, async () => ({ status: 'ok' as const }))

  app.get('/health/ready', {
    schema: { tags: ['operations'], summary: 'The gateway can take events (broker connected)', operationId: 'ready', response: { 200: ReadySchema, 503: ReadySchema } },
    logLevel: 'warn'
  }, async (_request, reply) => {
    const health = await broker.health()
    metrics.brokerUp.set({ broker: broker.name }, health.up ? 1 : 0)
    return reply.code(health.up ? 200 : 503).send({
      status: health.up ? 'ready' : 'unavailable',
      broker: { name: broker.name, up: health.up, ...(health.detail === undefined ? {} : { detail: health.detail }) }
    })
  })

  app.get('/metrics', {
    schema: { tags: ['operations'], summary: 'Prometheus metrics', operationId: 'metrics', produces: ['text/plain'] },
    logLevel: 'warn'
  }, async (_request, reply) => {
    metrics.brokerUp.set({ broker: broker.name }, (await broker.health()).up ? 1 : 0)
    const unrouted = await broker.unroutedCount?.()
    if (unrouted !== undefined) metrics.unrouted.set({ broker: broker.name }, unrouted)
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
