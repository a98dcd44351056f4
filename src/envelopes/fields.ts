import type { GatewayEvent } from './event.js'
import { TemplateError } from './expression.js'
import { patternBounds } from './pattern-bounds.js'

// What a template's placeholders read, and what is known of each value before any event
// arrives: its JSON types, whether it may be missing, how long it can be. The compiler uses the
// facts to refuse, at start, a template that names a field the type does not have or that could
// make a value its broker refuses.

export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null'

export interface Facts {
  /** The JSON types the value may have (`integer` is a `number` that is whole). */
  types: ReadonlySet<JsonType>
  /** The value may be missing (an optional field, a header that was not sent). */
  optional: boolean
  /** Longest text the value can make, in characters (strings; numbers and booleans as text). Unknown: unbounded. */
  maxLength?: number
  /** As text, the value is printable ASCII without spaces: safe wherever brokers allow only that. */
  ascii: boolean
  /** As text, the value is never empty (SQS ids and EventBridge fields refuse an empty one). */
  nonEmpty: boolean
  /** The JSON Pointer of the data field it reads (for answers that name the field). */
  pointer?: string
}

export interface Field {
  name: string
  facts: Facts
  /** Known at start (the type, the destination's source): compiled in as a constant. */
  constant?: unknown
  /** The value for one message; `traceparent` is the message's own trace context. */
  get: (event: GatewayEvent, traceparent: string | undefined) => unknown
}

/** What a template is compiled for: one event type at one destination. */
export interface FieldScope {
  type: string
  /** JSON Schema of the type's data. */
  schema: object
  /** The catalog's aggregate of the type (Draft Genie's envelopes). */
  aggregate?: { type: string, idField: string }
  /** The destination's source (and Ocelot module). */
  source: string
  module: string
  /** The URI of what the data conforms to (CloudEvents `dataschema`); default the type's, `dataSchemaUri(type)`. */
  dataSchema?: string
}

/**
 * The URI a type's data schema is known by (CloudEvents `dataschema`): GET /v1/event-types/{type}
 * serves it. A destination that gets fields protected has its own, `destination` named in it: the
 * AsyncAPI document's `<destination>.<type>.data` schema.
 */
export function dataSchemaUri (type: string, destination?: string): string {
  return destination === undefined
    ? `urn:event-gateway:event-types:${type}`
    : `urn:event-gateway:destinations:${destination}:event-types:${type}`
}

const STRING = new Set<JsonType>(['string'])
const text = (maxLength: number, optional = false): Facts => ({ types: STRING, optional, maxLength, ascii: true, nonEmpty: true })

// Visible ASCII, at most 128: what the context headers may be (src/http/context/request-context.ts), and so here.
const CONTEXT = 128

/** The event's own placeholders (besides `data`), with what a value of each can be. */
const EVENT_FIELDS: Record<string, (scope: FieldScope) => Omit<Field, 'name'>> = {
  id: () => ({ facts: text(36), get: e => e.id }),
  type: s => ({ facts: text(s.type.length), constant: s.type, get: e => e.type }),
  time: () => ({ facts: text(24), get: e => e.time }),
  // A UUID (36) or a slug (64).
  tenant: () => ({ facts: text(64), get: e => e.tenantId }),
  user: () => ({ facts: text(CONTEXT, true), get: e => e.userId }),
  account: () => ({ facts: text(CONTEXT, true), get: e => e.accountId }),
  correlationId: () => ({ facts: text(CONTEXT), get: e => e.correlationId }),
  traceparent: () => ({ facts: text(55, true), get: (_e, traceparent) => traceparent }),
  // W3C: at most 512 characters (longer is not passed on), and only beside a traceparent.
  tracestate: () => ({ facts: text(512, true), get: (e, traceparent) => traceparent === undefined ? undefined : e.tracestate }),
  // A batch item's is the request's key, a space and the item's index (src/http/routes/events/batch.ts).
  idempotencyKey: () => ({ facts: { ...text(255 + 1 + 5, true), ascii: false }, get: e => e.idempotencyKey }),
  routingKey: () => ({ facts: text(255), get: e => e.routingKey }),
  source: s => ({ facts: { ...text(s.source.length), ascii: isPrintable(s.source) }, constant: s.source, get: () => s.source }),
  module: s => ({ facts: { ...text(s.module.length), ascii: isPrintable(s.module) }, constant: s.module, get: () => s.module }),
  dataschema: s => {
    const uri = s.dataSchema ?? dataSchemaUri(s.type)
    return { facts: { ...text(uri.length), ascii: isPrintable(uri) }, constant: uri, get: () => uri }
  },
  'aggregate.type': s => {
    const type = aggregateTypeOf(s)
    return { facts: { ...text(type.length), ascii: isPrintable(type) }, constant: type, get: () => type }
  },
  'aggregate.id': s => {
    // The catalog's id field when the event has it, else the event id (Draft Genie's rule).
    const id = s.aggregate === undefined ? undefined : dataFacts(s, s.aggregate.idField)
    const facts: Facts = id === undefined
      ? text(36)
      : {
          types: STRING,
          optional: false,
          ascii: id.ascii,
          nonEmpty: id.nonEmpty,
          ...(id.maxLength === undefined ? {} : { maxLength: Math.max(36, id.maxLength) })
        }
    return { facts, get: e => e.aggregate?.id ?? e.id }
  }
}

const EVENT_FIELD_NAMES = [...Object.keys(EVENT_FIELDS), 'data', 'data.<field>']

/** A type without a catalog aggregate is its own: its first word, capitalised (`audit.recorded`: Audit). */
function aggregateTypeOf (scope: Pick<FieldScope, 'type' | 'aggregate'>): string {
  if (scope.aggregate !== undefined) return scope.aggregate.type
  const prefix = scope.type.split('.')[0] ?? scope.type
  return prefix.charAt(0).toUpperCase() + prefix.slice(1)
}

/** Printable ASCII, space excluded: what SQS ids take, and safe everywhere else. */
export const isPrintable = (value: string): boolean => /^[\x21-\x7e]*$/.test(value)

/** A placeholder's field, resolved for one type; a name the type does not have is a TemplateError. */
export function resolveField (name: string, scope: FieldScope): Field {
  const known = Object.hasOwn(EVENT_FIELDS, name) ? EVENT_FIELDS[name] : undefined
  if (known !== undefined) return { name, ...known(scope) }
  if (name === 'data') {
    return { name, facts: { types: new Set(['object']), optional: false, ascii: false, nonEmpty: true }, get: e => e.data }
  }
  if (name.startsWith('data.')) {
    const key = name.slice(5)
    const path = key.split('.')
    const facts = dataFacts(scope, ...path)
    // Own fields only, never the prototype's: an open schema lets a client choose the keys.
    return { name, facts, get: path.length === 1 ? e => Object.hasOwn(e.data, key) ? e.data[key] : undefined : e => dig(e.data, path) }
  }
  throw new TemplateError(`{{${name}}} is not a field of the event; the fields are ${EVENT_FIELD_NAMES.join(', ')}`)
}

function dig (value: unknown, path: readonly string[]): unknown {
  let at = value
  for (const key of path) {
    if (!isRecord(at) || Array.isArray(at)) return undefined
    at = Object.hasOwn(at, key) ? at[key] : undefined
  }
  return at
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null

type Schema = Record<string, unknown>

/** A subschema as an object: `true` (or anything else that is not one) reads as `{}`, which allows anything. */
const schemaOf = (value: unknown): Schema => isRecord(value) ? value : {}

/** The subschemas of `anyOf` or `oneOf`, when the schema is a union. */
const variantsOf = (schema: Schema): Schema[] | undefined => {
  const variants = schema.anyOf ?? schema.oneOf
  return Array.isArray(variants) ? variants.map(schemaOf) : undefined
}

/** The subschemas a keyword names (`properties`, `patternProperties`); none when it is absent. */
const namedSchemas = (schema: Schema, keyword: 'properties' | 'patternProperties'): Record<string, unknown> => {
  const named = schema[keyword]
  return isRecord(named) ? named : {}
}

/** The schema of a field of the data along a path of property names, and whether it may be missing. */
function schemaAt (scope: Pick<FieldScope, 'type' | 'schema'>, path: readonly string[]): { schema: Schema, optional: boolean } {
  let schema = schemaOf(scope.schema)
  let optional = false
  for (const [i, key] of path.entries()) {
    // A union (an object or null, say): the object that has the field; any other kind leaves it missing.
    const variants = variantsOf(schema)
    if (variants !== undefined) {
      const objects = variants.filter(v => v.type === 'object' || v.properties !== undefined)
      if (objects.length < variants.length) optional = true
      schema = objects.find(v => Object.hasOwn(namedSchemas(v, 'properties'), key)) ?? objects[0] ?? schema
    } else if (i > 0 && schema.type !== 'object') {
      // Inside a value that may be null, or not an object, a field may be missing.
      optional = true
    }
    const properties = namedSchemas(schema, 'properties')
    if (Object.hasOwn(properties, key)) {
      const required = schema.required
      if (!(Array.isArray(required) && required.includes(key))) optional = true
      schema = schemaOf(properties[key])
      continue
    }
    const open = openValues(schema)
    if (open === undefined) {
      const names = Object.keys(properties)
      const has = names.length > 0 ? ` (${i === 0 ? 'its data has' : `data.${path.slice(0, i).join('.')} has`} ${names.join(', ')})` : ''
      throw new TemplateError(`data.${path.slice(0, i + 1).join('.')} is not a field of ${scope.type}${has}`)
    }
    optional = true
    schema = open
  }
  return { schema, optional }
}

/** The JSON Schema of a field of the data (`data.a.b`: `['a', 'b']`), and whether it may be missing. */
export function dataSchemaAt (scope: Pick<FieldScope, 'type' | 'schema'>, path: readonly string[]): { schema: object, optional: boolean } {
  return schemaAt(scope, path)
}

/** The facts of a field of the data, from the type's JSON Schema. */
export function dataFacts (scope: Pick<FieldScope, 'type' | 'schema'>, ...path: string[]): Facts {
  const { schema, optional } = schemaAt(scope, path)
  return { ...factsOf(schema), optional, pointer: `/${path.join('/')}` }
}

/** The property names an object of the data declares (`data`, `data.<field>`), and whether it can have no others. */
export function dataKeys (scope: Pick<FieldScope, 'type' | 'schema'>, name: string): { names: string[], closed: boolean } {
  const { schema } = schemaAt(scope, name === 'data' ? [] : name.slice(5).split('.'))
  const names = Object.keys(namedSchemas(schema, 'properties'))
  const closed = schema.additionalProperties === false && Object.keys(namedSchemas(schema, 'patternProperties')).length === 0
  return { names, closed }
}

/** The schema of an object's other properties, when it allows any (a Record, additionalProperties). */
function openValues (schema: Schema): Schema | undefined {
  const patterns = Object.values(namedSchemas(schema, 'patternProperties'))
  if (patterns.length === 1) return schemaOf(patterns[0])
  if (patterns.length > 1) return {}
  const extra = schema.additionalProperties
  if (extra === false) return undefined
  if (isRecord(extra)) return extra
  // An object of anything: `{"type": "object"}` alone, or no schema at all. Declared properties
  // without additionalProperties: false are still "open" in JSON Schema, but a template naming a
  // field the schema does not declare is more likely a typo than a wish: refused.
  if (schema.properties !== undefined) return undefined
  const declared = schema.type === undefined ? undefined : [schema.type].flat()
  const anything = declared === undefined ? Object.keys(schema).every(k => ANNOTATIONS.has(k)) : declared.includes('object')
  return anything ? {} : undefined
}

const ANNOTATIONS = new Set(['description', 'title', 'examples', 'default', '$comment', 'deprecated', 'readOnly', 'writeOnly'])

const ALL = new Set<JsonType>(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'])
// Longest text of a JavaScript number (-0.0000012345678901234567: 25).
const NUMBER_TEXT = 25

/** What a JSON Schema says of its values' types and length, for the shapes TypeBox and JSON Schema files use. */
function factsOf (schema: Schema): Omit<Facts, 'optional' | 'pointer'> {
  const variants = variantsOf(schema)
  if (variants !== undefined && variants.length > 0) {
    const all = variants.map(factsOf)
    const types = new Set(all.flatMap(f => [...f.types]))
    const lengths = all.map(f => f.maxLength)
    return {
      types,
      ascii: all.every(f => f.ascii),
      nonEmpty: all.every(f => f.nonEmpty),
      ...(lengths.every(l => l !== undefined) ? { maxLength: Math.max(...lengths) } : {})
    }
  }
  const values = Object.hasOwn(schema, 'const') ? [schema.const] : listOf(schema.enum)
  if (values !== undefined) {
    const texts = values.map(v => typeof v === 'string' ? v : JSON.stringify(v))
    return {
      types: new Set(values.map(jsonTypeOf)),
      maxLength: Math.max(0, ...texts.map(t => t.length)),
      ascii: texts.every(isPrintable),
      nonEmpty: texts.every(t => t !== '')
    }
  }
  const declared = schema.type
  // Names the meta-schema allows (Ajv has compiled the schema before any template reads it).
  const types = new Set(declared === undefined ? ALL : [declared].flat() as JsonType[])
  if (types.has('number')) types.add('integer')
  const onlyString = types.size === 1 && types.has('string')
  if (onlyString) {
    // ajv-formats takes a uuid with its urn:uuid: prefix too (45).
    if (schema.format === 'uuid') return { types, maxLength: 45, ascii: true, nonEmpty: true }
    // The tighter of maxLength and what the pattern allows.
    const bounds = typeof schema.pattern === 'string' ? patternBounds(schema.pattern) : { minLength: 0, ascii: false }
    const lengths = [schema.maxLength, bounds.maxLength].filter((l): l is number => typeof l === 'number')
    const shortest = Math.max(typeof schema.minLength === 'number' ? schema.minLength : 0, bounds.minLength)
    return {
      types,
      ascii: bounds.ascii,
      nonEmpty: shortest > 0 || typeof schema.format === 'string',
      ...(lengths.length > 0 ? { maxLength: Math.min(...lengths) } : {})
    }
  }
  const scalar = [...types].every(t => t === 'number' || t === 'integer' || t === 'boolean' || t === 'null')
  if (scalar) return { types, maxLength: NUMBER_TEXT, ascii: true, nonEmpty: true }
  return { types, ascii: false, nonEmpty: false }
}

const listOf = (value: unknown): unknown[] | undefined => Array.isArray(value) ? value : undefined

/** The JSON type of a JSON value (a `const`, an `enum` entry, a template's literal). */
export function jsonTypeOf (value: unknown): JsonType {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  if (typeof value === 'string') return 'string'
  if (typeof value === 'boolean') return 'boolean'
  return 'object'
}
