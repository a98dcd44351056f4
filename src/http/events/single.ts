import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { routingKeyErrors, type Catalog, type CatalogType } from '../../catalog/index.js'
import type { FanOut } from '../../delivery/fan-out.js'
import type { Intake } from '../../delivery/intake.js'
import { GatewayError } from '../../errors.js'
import { HEADERS } from '../../headers.js'
import { checkIdempotencyKey } from '../../idempotency.js'
import type { Metrics } from '../../metrics.js'
import { AcceptedSchema, ContextHeadersSchema, errorResponses } from '../schemas.js'
import { contextOf } from './context.js'

function idempotencyKeyOf (request: FastifyRequest): string | undefined {
  const key = request.headers[HEADERS.idempotencyKey]
  if (key === undefined) return undefined
  if (Array.isArray(key)) throw new GatewayError('EVG_BAD_CONTEXT', 'Idempotency-Key must be sent once')
  checkIdempotencyKey(key)
  return key
}

function describe (entry: CatalogType, destinations: string[]): string {
  const keys = `Routing key: \`${entry.routingKey}\`${entry.dedupeKey ? `; dedupe key: \`${entry.dedupeKey}\`` : ''}`
  return `${entry.description}\n\n${keys}; goes to: ${destinations.map(d => `\`${d}\``).join(', ')}.`
}

/** `POST /v1/events/{type}`: one literal route per catalog type, its body validated by the type's schema. */
export function singleRoutes (app: FastifyInstance, opts: { catalog: Catalog, fanOut: FanOut, intake: Intake, metrics: Metrics }): void {
  const { catalog, fanOut, intake, metrics } = opts
  const typed = app.withTypeProvider<TypeBoxTypeProvider>()
  for (const entry of catalog.list()) {
    typed.post(`/v1/events/${entry.type}`, {
      config: { eventType: entry.type, publishes: true },
      schema: {
        tags: [entry.domain],
        summary: `Publish ${entry.type}`,
        description: describe(entry, fanOut.targetsOf(entry.type).map(t => t.name)),
        operationId: `publish_${entry.type.replace(/[^A-Za-z0-9]/g, '_')}`,
        headers: ContextHeadersSchema,
        body: entry.schema,
        response: { 202: AcceptedSchema, ...errorResponses }
      }
    }, async (request, reply) => {
      const tooLong = routingKeyErrors(entry, request.body)
      if (tooLong !== undefined) throw new GatewayError('EVG_VALIDATION', 'the body is not valid', { extensions: { errors: tooLong } })
      const idempotencyKey = idempotencyKeyOf(request)
      const [outcome] = await intake.accept([{ entry, data: request.body, ctx: contextOf(request), ...(idempotencyKey === undefined ? {} : { idempotencyKey }) }], request.traceContext)
      if (outcome === undefined || !outcome.ok) throw outcome?.error ?? new GatewayError('EVG_INTERNAL')
      Object.assign(request.logFields as Record<string, unknown>, { eventId: outcome.accepted.id, type: entry.type })
      if (outcome.replayed) {
        metrics.idempotentReplays.inc()
        reply.header(HEADERS.idempotencyReplayed, 'true')
      }
      return reply.code(202).send(outcome.accepted)
    })
  }
}
