import type { Catalog } from '../../catalog/index.js'

// The OpenAPI document as @fastify/swagger generates it from the routes, made into the contract
// clients generate code from: every shared shape once under `components` and referred to, each
// type's payload named, the batch item a union on `type`, and the response headers the gateway
// sends. The routes' schemas stay what Ajv and the serializers run; nothing here changes an answer.

type Json = Record<string, unknown>

interface Media { schema?: Json, example?: unknown }
interface Response { description: string, headers?: Record<string, Json>, content?: Record<string, Media> }
interface Operation {
  operationId?: string
  parameters?: Json[]
  requestBody?: { content: Record<string, Media> }
  responses: Record<string, Response>
}
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>
  components: { schemas?: Record<string, Json>, parameters?: Record<string, Json>, headers?: Record<string, Json>, [key: string]: unknown }
  [key: string]: unknown
}

const ref = (section: string, name: string) => ({ $ref: `#/components/${section}/${name}` })

/** Response headers, by the name the gateway sends them under. */
const RESPONSE_HEADERS = {
  'X-Correlation-ID': {
    description: 'The request\'s X-Correlation-ID, or the one the gateway made (a UUID); every envelope carries it',
    required: true,
    schema: { type: 'string' }
  },
  'Idempotency-Replayed': {
    description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key: nothing was published',
    required: false,
    schema: { type: 'string', enum: ['true'] }
  },
  'Retry-After': {
    description: 'Seconds to wait before sending the request again, when the gateway knows',
    required: false,
    schema: { type: 'integer', minimum: 0 }
  },
  'RateLimit-Limit': {
    description: 'With a rate limit for the tenant: the events it may send at once (its burst)',
    required: false,
    schema: { type: 'integer', minimum: 0 }
  },
  'RateLimit-Remaining': {
    description: 'With a rate limit for the tenant: the events it may send now',
    required: false,
    schema: { type: 'integer', minimum: 0 }
  },
  'RateLimit-Reset': {
    description: 'With a rate limit for the tenant: seconds until its bucket is full again',
    required: false,
    schema: { type: 'integer', minimum: 0 }
  }
} satisfies Record<string, Json>
type ResponseHeader = keyof typeof RESPONSE_HEADERS

const RATE_LIMIT_HEADERS: ResponseHeader[] = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']

/**
 * A name per type from `name`; where two types would share one, both get `fallback` instead, which
 * must keep types apart and never give what `name` gives another type.
 */
export function namesByType (
  types: readonly string[],
  name: (type: string) => string,
  fallback: (type: string) => string
): Map<string, string> {
  const counts = new Map<string, number>()
  for (const type of types) counts.set(name(type), (counts.get(name(type)) ?? 0) + 1)
  return new Map(types.map(type => [type, counts.get(name(type)) === 1 ? name(type) : fallback(type)]))
}

/** A type's component base name; componentBases names every type of the catalog. */
function baseOf (bases: ReadonlyMap<string, string>, type: string): string {
  const base = bases.get(type)
  if (base === undefined) throw new Error(`no component name for type ${type}`)
  return base
}

/** PascalCase of a type (`call.ended`: `CallEnded`); the type itself where two share one. */
export function componentBases (types: readonly string[]): Map<string, string> {
  // A type starts with a lower-case letter, PascalCase with a capital: the two never meet.
  return namesByType(types, type => type.split(/[._-]/).map(w => w.charAt(0).toUpperCase() + w.slice(1)).join(''), type => type)
}

/** Puts `value` under `name` in a components section, refusing a different value under the same name. */
function put (section: Record<string, Json>, name: string, value: Json): void {
  const existing = section[name]
  if (existing !== undefined && JSON.stringify(existing) !== JSON.stringify(value)) {
    throw new Error(`OpenAPI: two different components named ${name}`)
  }
  section[name] = value
}

/** Replaces every schema named with `x-component` by a reference, innermost first, collecting it. */
function hoistNamed (node: unknown, schemas: Record<string, Json>): unknown {
  if (Array.isArray(node)) return node.map(n => hoistNamed(n, schemas))
  if (typeof node !== 'object' || node === null) return node
  const out: Json = {}
  for (const [key, value] of Object.entries(node)) out[key] = hoistNamed(value, schemas)
  const name = out['x-component']
  if (typeof name !== 'string') return out
  delete out['x-component']
  put(schemas, name, out)
  return ref('schemas', name)
}

/** The batch item: one variant per type, each with that type's payload as `data`. */
function batchItem (types: readonly string[], bases: Map<string, string>, schemas: Record<string, Json>, idempotencyKey: unknown): Json {
  const mapping: Record<string, string> = {}
  for (const type of types) {
    const name = `${baseOf(bases, type)}BatchItem`
    put(schemas, name, {
      type: 'object',
      required: ['type', 'data'],
      properties: {
        type: { type: 'string', enum: [type] },
        data: ref('schemas', `${baseOf(bases, type)}Data`),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey })
      },
      additionalProperties: false
    })
    mapping[type] = ref('schemas', name).$ref
  }
  return {
    description: 'One event of the batch: its type, its data (that type\'s payload) and an optional idempotency key. ' +
      'An item that is not valid is refused alone, in its result',
    oneOf: Object.values(mapping).map($ref => ({ $ref })),
    discriminator: { propertyName: 'type', mapping }
  }
}

/** Header parameters become components (named after the header: `x-tenant-id` is `XTenantId`). */
function shareParameters (op: Operation, parameters: Record<string, Json>): void {
  op.parameters = op.parameters?.map(p => {
    if (p.in !== 'header' || typeof p.name !== 'string') return p
    const name = p.name.split('-').map(w => w.charAt(0).toUpperCase() + w.slice(1)).join('')
    put(parameters, name, p)
    return ref('parameters', name)
  })
}

/** Lists a response header, by reference to its component. */
function addHeader (response: Response, name: ResponseHeader, headers: Record<string, Json>): void {
  put(headers, name, RESPONSE_HEADERS[name])
  response.headers = { ...response.headers, [name]: ref('headers', name) }
}

function addResponseHeaders (path: string, op: Operation, headers: Record<string, Json>): void {
  for (const [status, response] of Object.entries(op.responses)) {
    const problem = response.content?.['application/problem+json'] !== undefined
    if (problem && ['409', '429', '503'].includes(status)) addHeader(response, 'Retry-After', headers)
    // A limited tenant's answers carry them, taken or refused.
    if (op.operationId?.startsWith('publish_') === true && ['202', '207', '429'].includes(status)) {
      for (const name of RATE_LIMIT_HEADERS) addHeader(response, name, headers)
    }
    // The context hook of the event routes sets it on every answer, refusals included.
    if (path.startsWith('/v1/events')) addHeader(response, 'X-Correlation-ID', headers)
  }
}

/** The document @fastify/swagger generated, shaped as described above (its `transformObject`). */
export function shapeDocument (doc: OpenApiDocument, catalog: Catalog): OpenApiDocument {
  const components = doc.components
  const schemas = components.schemas ?? {}
  const parameters: Record<string, Json> = {}
  const headers: Record<string, Json> = {}
  doc.paths = hoistNamed(doc.paths, schemas) as OpenApiDocument['paths']

  const types = catalog.list().map(e => e.type)
  const bases = componentBases(types)
  for (const type of types) {
    const op = doc.paths[`/v1/events/${type}`]?.post
    const media = op?.requestBody?.content['application/json']
    if (op === undefined || media?.schema === undefined) continue
    put(schemas, `${baseOf(bases, type)}Data`, media.schema)
    media.schema = ref('schemas', `${baseOf(bases, type)}Data`)
    const accepted = op.responses['202']
    // Only the single routes answer a replay with the header; a batch says nothing per event.
    if (accepted !== undefined) addHeader(accepted, 'Idempotency-Replayed', headers)
  }

  // The batch body as the route checks it has `data` of any object; here each item is typed.
  const events = (schemas.BatchRequest?.properties as Record<string, Json> | undefined)?.events
  if (events !== undefined) {
    const item = events.items as Json
    put(schemas, 'BatchItem', batchItem(types, bases, schemas, (item.properties as Json | undefined)?.idempotencyKey))
    events.items = ref('schemas', 'BatchItem')
  }

  for (const [path, item] of Object.entries(doc.paths)) {
    for (const op of Object.values(item)) {
      shareParameters(op, parameters)
      addResponseHeaders(path, op, headers)
    }
  }
  doc.components = { ...components, parameters, headers, schemas }
  return doc
}
