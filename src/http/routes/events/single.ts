import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { ApiKeys } from '../../context/api-keys.js'
import { routingKeyErrors, type Catalog, type CompiledEntry } from '../../../catalog/index.js'
import type { Config } from '../../../config/index.js'
import type { FanOut } from '../../../delivery/fan-out.js'
import type { Intake } from '../../../delivery/intake.js'
import { GatewayError } from '../../../errors.js'
import { createEvent } from '../../../envelopes/event.js'
import { HEADERS } from '../../context/headers.js'
import type { Metrics } from '../../../observability/metrics.js'
import { namesByType } from '../openapi.js'
import { AcceptedSchema, contextHeaders, eventSecurity, publishProblemResponses } from '../schemas.js'
import { contextOf, idempotencyKeyOf } from '../../context/hook.js'
import { addLogFields } from '../../hooks/access-log.js'

function describe (entry: CompiledEntry, destinations: string[]): string {
  const keys = `Routing key: \`${entry.routingKey}\`${entry.dedupeKey ? `; dedupe key: \`${entry.dedupeKey}\`` : ''}`
  return `${entry.description}\n\n${keys}; goes to: ${destinations.map(d => `\`${d}\``).join(', ')}.`
}

/** `POST /v1/events/{type}`: one literal route per catalog type, its body validated by the type's schema. */
export function singleRoutes (
  app: FastifyInstance,
  opts: { config: Config, catalog: Catalog, fanOut: FanOut, intake: Intake, metrics: Metrics, apiKeys?: ApiKeys }
): void {
  const { catalog, fanOut, intake, metrics } = opts
  const typed = app.withTypeProvider<TypeBoxTypeProvider>()
  const headers = contextHeaders(opts.config)
  const security = eventSecurity(opts.apiKeys !== undefined)
  // `publish_call_ended` for `call.ended`, friendly to code generators; where two types would get the
  // same one (`call.ended`, `call_ended`), each keeps its own spelling: an operationId may hold any
  // character a type name has.
  const operationIds = namesByType(
    catalog.list().map(e => e.type),
    type => `publish_${type.replace(/[^A-Za-z0-9]/g, '_')}`,
    type => `publish_${type}`
  )
  for (const entry of catalog.list()) {
    typed.post(`/v1/events/${entry.type}`, {
      config: { eventType: entry.type, publishes: true },
      schema: {
        tags: [entry.domain],
        summary: `Publish ${entry.type}`,
        description: describe(entry, fanOut.destinationsOf(entry.type).map(t => t.name)),
        operationId: operationIds.get(entry.type) ?? `publish_${entry.type}`,
        headers,
        security,
        body: entry.schema,
        response: { 202: AcceptedSchema, ...publishProblemResponses }
      }
    }, async (request, reply) => {
      // Made once: its routing key and message fields are checked, then it is what gets published.
      const event = createEvent(entry, request.body, contextOf(request), idempotencyKeyOf(request))
      const invalid = routingKeyErrors(entry, event.routingKey) ?? fanOut.fieldErrors(event)
      if (invalid !== undefined) throw new GatewayError('EVG_VALIDATION', 'the body is not valid', { extensions: { errors: invalid } })
      const [outcome] = await intake.accept([{ event }], request.traceContext)
      if (outcome === undefined || !outcome.ok) throw outcome?.error ?? new GatewayError('EVG_INTERNAL')
      addLogFields(request, { eventId: outcome.accepted.id, type: entry.type })
      if (outcome.replayed) {
        metrics.idempotentReplays.inc()
        reply.header(HEADERS.idempotencyReplayed, 'true')
      }
      return reply.code(202).send(outcome.accepted)
    })
  }
}
