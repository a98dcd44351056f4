import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Catalog, CatalogType } from '../catalog/index.js'
import { dataSchemaUri } from '../envelope.js'
import { GatewayError } from '../errors.js'
import { errorResponses } from './schemas.js'

const EventTypeSchema = Type.Object({
  type: Type.String(),
  domain: Type.String(),
  description: Type.String(),
  path: Type.String({ description: 'Where to POST it' }),
  dataschema: Type.String({ description: 'The CloudEvents dataschema of its envelopes' }),
  routingKey: Type.String(),
  dedupeKey: Type.Optional(Type.String()),
  sensitive: Type.Array(Type.String(), { description: 'Fields never logged' }),
  schema: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of data; its first example is a valid payload' })
})

function describe (e: CatalogType) {
  return {
    type: e.type,
    domain: e.domain,
    description: e.description,
    path: `/v1/events/${e.type}`,
    dataschema: dataSchemaUri(e.type),
    routingKey: e.routingKey,
    ...(e.dedupeKey === undefined ? {} : { dedupeKey: e.dedupeKey }),
    sensitive: e.sensitive ?? [],
    schema: e.schema as unknown as Record<string, unknown>
  }
}

export async function eventTypeRoutes (app: FastifyInstance, opts: { catalog: Catalog }): Promise<void> {
  const { catalog } = opts
  app.get('/v1/event-types', {
    schema: {
      tags: ['catalog'],
      summary: 'List the event types this gateway accepts',
      operationId: 'list_event_types',
      response: { 200: Type.Object({ types: Type.Array(EventTypeSchema) }) }
    }
  }, async () => ({ types: catalog.list().map(describe) }))

  app.get('/v1/event-types/:type', {
    schema: {
      tags: ['catalog'],
      summary: 'One event type with its schema',
      operationId: 'get_event_type',
      params: Type.Object({ type: Type.String() }),
      response: { 200: EventTypeSchema, ...errorResponses }
    }
  }, async (request) => {
    const { type } = request.params as { type: string }
    const entry = catalog.get(type)
    if (entry === undefined) throw new GatewayError('EVG_UNKNOWN_TYPE', `no event type '${type.slice(0, 128)}'`)
    return describe(entry)
  })
}
