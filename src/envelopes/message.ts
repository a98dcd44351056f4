import type { FieldError } from '../errors.js'
import type { GatewayEvent } from './event.js'
import { TemplateError } from './expression.js'
import type { FieldScope } from './fields.js'
import { checkValues, isLimitedField, LIMITS, MAX_HEADER_BYTES, problemWith, type Check, type Limit, type LimitedField } from './limits.js'
import { compileFunction, compileText, literalValue, type Value } from './value.js'

// What a message carries besides its body, declared per destination as templates: the RabbitMQ
// routing key, properties and headers; the SQS group and deduplication ids and attributes; the
// EventBridge bus, source and detail type; the Kafka topic, key and headers. Compiled per type at start; a value its broker would
// refuse (too long, may be missing) stops the start, and what only the event can tell (the bytes
// of a routing key, an SQS id's characters) is checked before the event is accepted.

/** A message's fields as one event renders them; absent ones take the broker's default. */
export interface WireMessage {
  routingKey?: string
  properties?: { correlationId?: string, type?: string, appId?: string }
  /** Every header of the message, when the destination declares any. */
  headers?: Record<string, string | number | boolean>
  groupId?: string
  deduplicationId?: string
  /** Every SQS message attribute, when the destination declares any. */
  attributes?: Record<string, { type: 'String' | 'Number', value: string }>
  busName?: string
  source?: string
  detailType?: string
  topic?: string
  /** The Kafka record key; absent: none (the partitioner spreads such records). */
  key?: string
}

export type MessageBroker = 'rabbitmq' | 'sqs' | 'eventbridge' | 'kafka'

/** A message field's template: a text with placeholders, or a function of one (`{"$sha256": "..."}`). */
export type FieldTemplate = string | { [fn: string]: string }

export interface MessageSpec {
  routingKey?: FieldTemplate
  /** Not messageId: it is the event id, by which consumers drop duplicates and the gateway knows a returned message. */
  properties?: Partial<Record<'correlationId' | 'type' | 'appId', FieldTemplate>>
  headers?: Record<string, FieldTemplate | number | boolean | null>
  groupId?: FieldTemplate
  deduplicationId?: FieldTemplate
  attributes?: Record<string, FieldTemplate | null>
  busName?: FieldTemplate
  source?: FieldTemplate
  detailType?: FieldTemplate
  topic?: FieldTemplate
  key?: FieldTemplate
}

/** The fields each broker's messages have, for the routes file's schema. */
export const MESSAGE_FIELDS: Record<MessageBroker, readonly (keyof MessageSpec)[]> = {
  rabbitmq: ['routingKey', 'properties', 'headers'],
  sqs: ['groupId', 'deduplicationId', 'attributes'],
  eventbridge: ['busName', 'source', 'detailType'],
  kafka: ['topic', 'key', 'headers']
}

/** The headers every RabbitMQ message carries (docs/envelopes.md); a destination's `headers` add to them, or drop one with null. */
export const DEFAULT_HEADERS: Record<string, FieldTemplate> = {
  'x-event-type': '{{type}}',
  'x-tenant-id': '{{tenant}}',
  'x-correlation-id': '{{correlationId}}',
  'x-user-id': '{{user}}',
  'x-account-id': '{{account}}',
  traceparent: '{{traceparent}}',
  tracestate: '{{tracestate}}'
}

/** The attributes every SQS message carries; a destination's `attributes` add to them, or drop one with null. */
export const DEFAULT_ATTRIBUTES: Record<string, FieldTemplate> = {
  'event-type': '{{type}}',
  'tenant-id': '{{tenant}}',
  'correlation-id': '{{correlationId}}',
  'user-id': '{{user}}',
  // Not tracestate: SQS takes 10 attributes, and a destination declares it when its consumers want it.
  traceparent: '{{traceparent}}'
}

/** SQS: at most 10 attributes; names of letters, digits, `_`, `-`, `.`, not starting with AWS. or Amazon. */
const MAX_SQS_ATTRIBUTES = 10
const SQS_ATTRIBUTE_NAME = /^(?![Aa][Ww][Ss]\.|[Aa][Mm][Aa][Zz][Oo][Nn]\.)(?!\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)$/

type Render = (event: GatewayEvent, traceparent: string | undefined) => unknown

/** The key-like fields, one text each. */
export type KeyField = 'routingKey' | 'groupId' | 'deduplicationId' | 'busName' | 'source' | 'detailType' | 'topic'

export interface CompiledMessage {
  render: (event: GatewayEvent, traceparent: string | undefined) => WireMessage
  reads: ReadonlySet<string>
  /** The declared key fields that are the same for every event of the type (provisioning builds rules from them). */
  fixed: Partial<Record<KeyField, string>>
  /** Every key field declared, fixed or not. */
  declared: ReadonlySet<KeyField>
  /** What only the event can tell; undefined when the start proved every field fits. */
  check?: (event: GatewayEvent) => FieldError[] | undefined
  /** For the AsyncAPI document: the key fields' templates as declared, and the header and attribute tables compiled. */
  described: MessageDescription
}

export interface MessageDescription {
  templates: Partial<Record<KeyField, string>>
  headers?: readonly [string, Value][]
  attributes?: readonly [string, Value][]
}

function value (template: FieldTemplate | number | boolean, scope: FieldScope): Value {
  if (typeof template === 'number' || typeof template === 'boolean') return literalValue(template)
  if (typeof template === 'string') return compileText(template, scope)
  const call = compileFunction(template, scope)
  if (call === undefined) throw new TemplateError('takes a text with placeholders or a function ({"$sha256": "..."})')
  return call
}

/** A key-like field: always there, a scalar, and never longer than its broker takes. */
function keyField (name: LimitedField, template: FieldTemplate, scope: FieldScope, checks: Check[]): Value {
  const v = at(name, () => value(template, scope))
  const limit: Limit = LIMITS[name]
  const the = `the ${limit.what}`
  const { facts } = v
  if ([...facts.types].some(t => t === 'object' || t === 'array')) {
    throw new TemplateError(`${name}: ${the} can be an object or array in ${scope.type}; it must be text`)
  }
  if (facts.optional || facts.types.has('null')) {
    throw new TemplateError(`${name}: ${the} may be missing in ${scope.type}; give it a fallback with ??`)
  }
  if (facts.maxLength === undefined) {
    const unbounded = [...v.reads].filter(r => r.startsWith('data')).join(', ')
    throw new TemplateError(`${name}: ${unbounded || 'a value'} has no maxLength in ${scope.type}'s schema, ` +
      `so ${the} could be longer than the ${limit.max} ${limit.unit} it takes; ` +
      'bound the field in the schema, or hash it ({"$sha256": "..."})')
  }
  if (facts.maxLength > limit.max) {
    throw new TemplateError(`${name}: ${the} can be ${facts.maxLength} characters long in ${scope.type}, ` +
      `over the ${limit.max} ${limit.unit} it takes`)
  }
  const text = v.constant === undefined ? undefined : String(v.constant.value)
  // Fixed text its broker refuses: every event would be, so the start is.
  const chars = limit.chars
  const fixedTexts = [...(v.texts ?? []), ...(text === undefined ? [] : [text])]
  const badText = chars === undefined ? undefined : fixedTexts.find(t => t !== '' && !chars.test(t))
  if (badText !== undefined) throw new TemplateError(`${name}: '${badText}' has characters ${the} cannot hold (${chars?.says ?? ''})`)
  if (text !== undefined) {
    const problem = problemWith(text, limit)
    if (problem !== undefined) throw new TemplateError(`${name}: ${problem.replace(/^makes/, 'it makes')}`)
    return v
  }
  // What only the event tells: characters a non-ASCII value may bring, bytes past the characters
  // counted, an empty value, an event bus name's characters.
  const unproven = (limit.chars !== undefined && !(limit.chars.printable === true && facts.ascii)) ||
    (limit.unit === 'bytes' && !facts.ascii) || (limit.nonEmpty === true && !facts.nonEmpty)
  if (unproven) checks.push({ field: name, limit, value: v })
  return v
}

function at<T> (name: string, compile: () => T): T {
  try {
    return compile()
  } catch (err) {
    if (err instanceof TemplateError && !err.message.startsWith(name)) throw new TemplateError(`${name}: ${err.message}`)
    throw err
  }
}

/** The defaults with the declared ones on top, and those declared null left out. */
function merged (
  defaults: Record<string, FieldTemplate>,
  declared: Record<string, FieldTemplate | number | boolean | null>
): [string, FieldTemplate | number | boolean][] {
  const all: Record<string, FieldTemplate | number | boolean | null> = { ...defaults, ...declared }
  return Object.entries(all).filter((e): e is [string, FieldTemplate | number | boolean] => e[1] !== null)
}

/** A table's entries: values that are missing for an event are left out (a header not sent). */
function table (
  name: string,
  entries: [string, FieldTemplate | number | boolean][],
  scope: FieldScope,
  checkName: (key: string) => string | undefined
): [string, Value][] {
  return entries.map(([key, template]) => {
    const why = checkName(key)
    if (why !== undefined) throw new TemplateError(`${name}.${key}: ${why}`)
    const v = at(`${name}.${key}`, () => value(template, scope))
    if ([...v.facts.types].some(t => t === 'object' || t === 'array')) {
      throw new TemplateError(`${name}.${key}: can be an object or array in ${scope.type}; ` +
        'a header or attribute is text, a number or a boolean')
    }
    return [key, v]
  })
}

/** Compiles a destination's message fields for one type. */
export function compileMessage (broker: MessageBroker, spec: MessageSpec, scope: FieldScope): CompiledMessage | undefined {
  const allowed: readonly string[] = MESSAGE_FIELDS[broker]
  const unknown = Object.keys(spec).filter(k => !allowed.includes(k))
  if (unknown.length > 0) {
    throw new TemplateError(`${unknown.join(', ')}: not a field of a ${broker} message (its fields: ${allowed.join(', ')})`)
  }
  const checks: Check[] = []
  const renders: [keyof WireMessage, Render][] = []
  const reads = new Set<string>()
  const fixed: Partial<Record<KeyField, string>> = {}
  const declared = new Set<KeyField>()
  const described: MessageDescription = { templates: {} }
  const use = (v: Value) => { for (const r of v.reads) reads.add(r) }
  for (const name of ['routingKey', 'groupId', 'deduplicationId', 'busName', 'source', 'detailType', 'topic'] as const) {
    const template = spec[name]
    if (template === undefined) continue
    const v = keyField(name, template, scope, checks)
    use(v)
    declared.add(name)
    described.templates[name] = typeof template === 'string' ? template : JSON.stringify(template)
    if (v.constant !== undefined) fixed[name] = String(v.constant.value)
    renders.push([name, (event, traceparent) => String(v.get(event, traceparent))])
  }
  if (spec.key !== undefined) {
    // A Kafka key may be missing for an event (no key: the partitioner spreads it); never a table.
    const template = spec.key
    const v = at('key', () => value(template, scope))
    if ([...v.facts.types].some(t => t === 'object' || t === 'array')) {
      throw new TemplateError(`key: can be an object or array in ${scope.type}; a record key is text or a number`)
    }
    use(v)
    renders.push(['key', (event, traceparent) => {
      const k = v.get(event, traceparent)
      return k === undefined || k === null ? undefined : String(k)
    }])
  }
  if (spec.properties !== undefined) {
    const properties = Object.entries(spec.properties).map(([key, template]) => {
      const field = `properties.${key}`
      if (!isLimitedField(field)) {
        throw new TemplateError(`${field}: not a property a destination declares ` +
          '(correlationId, type, appId; messageId is always the event id)')
      }
      const v = keyField(field, template, scope, checks)
      use(v)
      return [key, v] as const
    })
    renders.push(['properties', (event, traceparent) =>
      Object.fromEntries(properties.map(([k, v]) => [k, String(v.get(event, traceparent))]))])
  }
  if (spec.headers !== undefined) {
    const headerName = (key: string) => Buffer.byteLength(key) > 255 || key === '' ? 'a header name is 1 to 255 bytes' : undefined
    const headers = table('headers', merged(DEFAULT_HEADERS, spec.headers), scope, headerName)
    headers.forEach(([, v]) => use(v))
    described.headers = headers
    // Bytes, at most 4 a character: headers proven to fit amqplib's buffer are not checked per event.
    const most = headers.reduce<number | undefined>((n, [k, v]) => {
      if (n === undefined || v.facts.maxLength === undefined) return undefined
      return n + Buffer.byteLength(k) + v.facts.maxLength * (v.facts.ascii ? 1 : 4)
    }, 0)
    if (most === undefined || most > MAX_HEADER_BYTES) checks.push({ table: 'headers', entries: headers })
    renders.push(['headers', (event, traceparent) => {
      const out: Record<string, unknown> = {}
      for (const [k, v] of headers) {
        const h = v.get(event, traceparent)
        if (h !== undefined && h !== null) out[k] = h
      }
      return out
    }])
  }
  if (spec.attributes !== undefined) {
    const attributeName = (key: string) => SQS_ATTRIBUTE_NAME.test(key)
      ? undefined
      : 'an SQS attribute name is 1 to 256 letters, digits, _, - and ., not starting with AWS. or Amazon.'
    const attributes = table('attributes', merged(DEFAULT_ATTRIBUTES, spec.attributes), scope, attributeName)
    if (attributes.length > MAX_SQS_ATTRIBUTES) {
      const names = attributes.map(([k]) => k).join(', ')
      throw new TemplateError(`attributes: ${attributes.length} attributes with the defaults (${names}); ` +
        `SQS takes at most ${MAX_SQS_ATTRIBUTES}: drop some defaults with null`)
    }
    attributes.forEach(([, v]) => use(v))
    described.attributes = attributes
    // Values from the data may bring characters (or numbers) SQS does not take.
    const fromData = attributes.filter(([, v]) => [...v.reads].some(r => r.startsWith('data')) &&
      (!v.facts.ascii || v.facts.types.has('number') || v.facts.types.has('integer')))
    if (fromData.length > 0) checks.push({ table: 'attributes', entries: fromData })
    renders.push(['attributes', (event, traceparent) => {
      const out: Record<string, { type: 'String' | 'Number', value: string }> = {}
      for (const [k, v] of attributes) {
        const a = v.get(event, traceparent)
        // SQS refuses an empty attribute value: a missing or empty one is left out.
        if (a === undefined || a === null || a === '') continue
        out[k] = typeof a === 'number' ? { type: 'Number', value: String(a) } : { type: 'String', value: String(a) }
      }
      return out
    }])
  }
  if (renders.length === 0) return undefined
  return {
    reads,
    fixed,
    declared,
    described,
    render: (event, traceparent) => {
      const message: Record<string, unknown> = {}
      for (const [name, render] of renders) {
        const field = render(event, traceparent)
        if (field !== undefined) message[name] = field
      }
      // Each render makes its field's type: the compiler above refused any template that could not.
      return message as WireMessage
    },
    ...(checks.length === 0 ? {} : { check: event => checkValues(checks, event) })
  }
}
