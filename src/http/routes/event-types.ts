import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { Catalog, CompiledEntry } from '../../catalog/index.js'
import { dataSchemaUri } from '../../envelopes/index.js'
import { GatewayError } from '../../errors.js'
import { noSecurity, problemResponses } from './schemas.js'

const EventTypeSchema = Type.Object({
  type: Type.String(),
  domain: Type.String(),
  description: Type.String(),
  path: Type.String({ description: 'Where to POST it' }),
  dataschema: Type.String({ description: 'The CloudEvents dataschema of its envelopes' }),
  routingKey: Type.String(),
  destinations: Type.Array(Type.String(), { description: 'Where events of this type go (the routes file)' }),
  dedupeKey: Type.Optional(Type.String()),
  sensitive: Type.Array(Type.String(), { description: 'Fields never logged' }),
  schema: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of data; its first example is a valid payload' })
}, { description: 'An event type: where to POST it, where it goes, and the JSON Schema of its data', 'x-component': 'EventType' })

function describe (e: CompiledEntry, destinations: readonly string[]) {
  return {
    type: e.type,
    domain: e.domain,
    description: e.description,
    path: `/v1/events/${e.type}`,
    dataschema: dataSchemaUri(e.type),
    routingKey: e.routingKey,
    destinations: [...destinations],
    ...(e.dedupeKey === undefined ? {} : { dedupeKey: e.dedupeKey }),
    sensitive: e.sensitive ?? [],
    schema: { ...e.schema }
  }
}

export async function eventTypeRoutes (
  app: FastifyInstance,
  opts: { catalog: Catalog, destinationsOf: (type: string) => readonly string[] }
): Promise<void> {
  const { catalog, destinationsOf } = opts
  app.get('/v1/event-types', {
    schema: {
      tags: ['catalog'],
      summary: 'List the event types this gateway accepts',
      operationId: 'list_event_types',
      security: noSecurity,
      response: {
        200: Type.Object({ types: Type.Array(EventTypeSchema) }, { description: 'Every type, in catalog order' }),
        ...problemResponses
      }
    }
  }, async () => ({ types: catalog.list().map(e => describe(e, destinationsOf(e.type))) }))

  app.withTypeProvider<TypeBoxTypeProvider>().get('/v1/event-types/:type', {
    schema: {
      tags: ['catalog'],
      summary: 'One event type with its schema',
      operationId: 'get_event_type',
      security: noSecurity,
      params: Type.Object({ type: Type.String({ description: 'The event type, e.g. `call.ended`' }) }),
      response: { 200: EventTypeSchema, ...problemResponses }
    }
  }, async (request) => {
    const { type } = request.params
    const entry = catalog.get(type)
    if (entry === undefined) throw new GatewayError('EVG_UNKNOWN_TYPE', `no event type '${type.slice(0, 128)}'`)
    return describe(entry, destinationsOf(entry.type))
  })
}
