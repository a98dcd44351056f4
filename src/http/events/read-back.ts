import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import type { ApiKeys } from '../../auth.js'
import type { EventReader } from '../../brokers/broker.js'
import type { Config } from '../../config.js'
import { GatewayError } from '../../errors.js'
import { EventsPageSchema, eventProblemResponses, eventSecurity, readHeaders } from '../schemas.js'
import { contextOf } from './context.js'

const ReadQuerySchema = Type.Object({
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Cursor: the `next` of the previous page' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
}, { additionalProperties: false })

/** `GET /v1/events`: the calling tenant's envelopes from the embedded store, when there is one. */
export function readBackRoute (app: FastifyInstance, opts: { config: Config, reader?: EventReader, apiKeys?: ApiKeys }): void {
  const { reader } = opts
  // Typed by hand, not by the type provider: the answer is stitched JSON text, not an object.
  app.get<{ Querystring: Static<typeof ReadQuerySchema> }>('/v1/events', {
    schema: {
      tags: ['read-back'],
      summary: 'Read back stored events (local destination only)',
      description: 'The calling tenant\'s envelopes, oldest first, as the local destination stored them. Poll with `after` = the previous `next`.',
      operationId: 'read_events',
      headers: readHeaders(opts.config),
      security: eventSecurity(opts.apiKeys !== undefined),
      querystring: ReadQuerySchema,
      response: {
        // Documents the answer; the handler sends the stored JSON as it is, never through a serializer.
        200: { description: 'A page of events; `next` is the cursor for the following one', content: { 'application/json': { schema: EventsPageSchema } } },
        ...eventProblemResponses
      }
    }
  }, async (request, reply) => {
    if (reader === undefined) throw new GatewayError('EVG_NOT_FOUND', 'reading events back needs a local destination (BROKER=local, or one in ROUTES_FILE)')
    const q = request.query
    const page = reader.read({ tenantId: contextOf(request).tenantId, limit: q.limit ?? 100, ...(q.type === undefined ? {} : { type: q.type }), ...(q.after === undefined ? {} : { after: q.after }) })
    // The stored envelopes are already JSON: stitch them rather than parse and re-serialize.
    return reply.type('application/json').send(`{"events":[${page.events.join(',')}],"next":${page.next}}`)
  })
}
