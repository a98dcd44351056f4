import type { FastifyInstance } from 'fastify'
import { Type, type Static } from 'typebox'
import type { ApiKeys } from '../../context/api-keys.js'
import type { EventReader } from '../../../brokers/broker.js'
import type { Catalog } from '../../../catalog/index.js'
import type { Config } from '../../../config/index.js'
import { GatewayError } from '../../../errors.js'
import { EventsPageSchema, eventProblemResponses, eventSecurity, readHeaders } from '../schemas.js'
import { contextOf } from '../../context/hook.js'

const ReadQuerySchema = Type.Object({
  type: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  after: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    description: 'Cursor: the `next` of the previous page'
  })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
}, { additionalProperties: false })

/** `GET /v1/events`: the calling tenant's envelopes from the embedded store, when there is one. */
export function readBackRoute (
  app: FastifyInstance,
  opts: { config: Config, catalog: Catalog, reader?: EventReader, apiKeys?: ApiKeys }
): void {
  const { reader, catalog } = opts
  // Typed by hand, not by the type provider: the answer is stitched JSON text, not an object.
  app.get<{ Querystring: Static<typeof ReadQuerySchema> }>('/v1/events', {
    // Reading is not publishing: tenants' rate limits count events sent.
    config: { rateLimit: false },
    schema: {
      tags: ['read-back'],
      summary: 'Read back stored events (local destination only)',
      description: 'The calling tenant\'s envelopes, oldest first, as the local destination stored them. ' +
        'Poll with `after` = the previous `next`.',
      operationId: 'read_events',
      headers: readHeaders(opts.config),
      security: eventSecurity(opts.apiKeys !== undefined),
      querystring: ReadQuerySchema,
      response: {
        // Documents the answer; the handler sends the stored JSON as it is, never through a serializer.
        200: {
          description: 'A page of events; `next` is the cursor for the following one',
          content: { 'application/json': { schema: EventsPageSchema } }
        },
        ...eventProblemResponses
      }
    }
  }, async (request, reply) => {
    if (reader === undefined) {
      throw new GatewayError('EVG_NOT_FOUND', 'reading events back needs a local destination (BROKER=local, or one in ROUTES_FILE)')
    }
    const q = request.query
    // An API key reads only the types it may publish: a named one it may not is refused, and
    // without a type the page holds only those it may.
    const key = request.apiKey
    if (key !== undefined && q.type !== undefined && !key.allowsType(q.type)) {
      throw new GatewayError('EVG_FORBIDDEN', `this API key may not read events of type ${q.type.slice(0, 128)}`)
    }
    const types = key === undefined || q.type !== undefined ? undefined : catalog.list().map(e => e.type).filter(t => key.allowsType(t))
    const page = reader.read({
      tenantId: contextOf(request).tenantId,
      limit: q.limit ?? 100,
      ...(q.type === undefined ? {} : { type: q.type }),
      ...(types === undefined || types.length === catalog.list().length ? {} : { types }),
      ...(q.after === undefined ? {} : { after: q.after })
    })
    // The stored envelopes are already JSON: stitch them rather than parse and re-serialize.
    return reply.type('application/json').send(`{"events":[${page.events.join(',')}],"next":${page.next}}`)
  })
}
