import { TemplateError } from '../envelopes/expression.js'
import { dataSchemaUri, type FieldScope } from '../envelopes/fields.js'
import { DEFAULT_PROFILE, type EnvelopeOptions } from '../envelopes/index.js'
import { PROFILES } from '../envelopes/profiles.js'
import type { MessageSpec } from '../envelopes/message.js'
import { compileWireFormat, type EnvelopeSpec, type WireFormat } from '../envelopes/wire-format.js'
import type { ProtectionKeys } from '../protection/keys.js'
import { compileProtection, ProtectionError, type ProtectAction, type Protection } from '../protection/rules.js'
import { patternMatcher } from './patterns.js'
import type { BrokerKind } from './routes-file.js'

/** What a type's schema says, for compiling templates against it; the fields the catalog makes its keys of. */
export type TypeInfo = Pick<FieldScope, 'type' | 'schema' | 'aggregate'> & {
  routingKey?: string
  dedupeKey?: string
  groupKey?: string
}

/** Per type pattern, the data fields a destination gets protected (`protect` in the routes file). */
export type ProtectSpec = Record<string, Record<string, ProtectAction>>

/** A destination's wire-format fields, as the routes file gives them (its own, and per type pattern). */
export interface FormatSpec {
  /** A profile's name or a template: parsed JSON, checked by the schema's shape and then by compiling. */
  envelope?: string | Record<string, unknown> | unknown[]
  contentType?: string
  message?: MessageSpec
}

interface Declared extends FormatSpec {
  formats?: (FormatSpec & { types: string[] })[]
  /** SQS: the queue, FIFO when it ends in `.fifo`. */
  queueUrl?: string
  /** Kafka: the topic and key, message fields every type of the destination shares unless a format says otherwise. */
  topic?: MessageSpec['topic']
  key?: MessageSpec['key']
  /** Kafka: how a cloudevents envelope travels (default binary). */
  cloudevents?: 'binary' | 'structured'
  protect?: ProtectSpec
}

/**
 * The CloudEvents Kafka protocol binding, binary mode: every attribute of the cloudevents profile
 * but the data as a `ce_` header, `datacontenttype` as `content-type`; the value is the data.
 */
const CLOUDEVENTS_BINARY_HEADERS: Record<string, string> = Object.fromEntries(Object.entries(PROFILES.cloudevents.template)
  .filter(([name]) => name !== 'data')
  .map(([name, value]) => [name === 'datacontenttype' ? 'content-type' : `ce_${name}`, value]))

/** What a destination declares besides its `message`: the Kafka topic and key. */
function ownFields (declared: Declared): MessageSpec {
  return {
    ...(declared.topic === undefined ? {} : { topic: declared.topic }),
    ...(declared.key === undefined ? {} : { key: declared.key })
  }
}

/**
 * The wire format of each type routed to a destination: the first `formats` entry whose pattern
 * matches the type, its fields over the destination's own. Every problem is added to `problems`
 * naming the field in the file and the type (`destinations.surveys.message.groupId (survey.refused): …`).
 */
export function compileFormats (
  name: string,
  broker: BrokerKind,
  declared: Declared,
  types: readonly TypeInfo[],
  options: EnvelopeOptions,
  problems: string[],
  warnings: string[],
  keys?: ProtectionKeys
): Map<string, WireFormat> {
  const here = `destinations.${name}`
  const entries = (declared.formats ?? []).map(f => ({ spec: f, match: patternMatcher(f.types) }))
  const protects = Object.entries(declared.protect ?? {}).map(([pattern, rules]) => ({ pattern, rules, match: patternMatcher([pattern]) }))
  const protectsUsed = new Set<string>()
  const used = new Set<number>()
  const formats = new Map<string, WireFormat>()
  const seen = new Set<string>()
  for (const info of types) {
    const i = entries.findIndex(e => e.match(info.type))
    const entry = entries[i]?.spec
    if (i !== -1) used.add(i)
    // The envelope and its content type come together; message fields one by one.
    const own = entry?.envelope !== undefined
    // Parsed JSON (a name or a template), which the compiler checks as an envelope.
    let envelope = (own ? entry.envelope : declared.envelope ?? DEFAULT_PROFILE) as EnvelopeSpec
    let contentType = own ? entry.contentType : entry?.contentType ?? declared.contentType
    const origin: Record<string, string> = { envelope: own ? `${here}.formats.${i}.envelope` : `${here}.envelope` }
    const fields = ownFields(declared)
    for (const key of Object.keys(fields)) origin[`message.${key}`] = `${here}.${key}`
    const message: MessageSpec = { ...fields, ...declared.message, ...entry?.message }
    const cloudevents = broker === 'kafka' && envelope === 'cloudevents'
    const binary = cloudevents && declared.cloudevents !== 'structured'
    if (binary) {
      envelope = '{{data}}'
      contentType ??= PROFILES.cloudevents.template.datacontenttype
      message.headers = { ...CLOUDEVENTS_BINARY_HEADERS, 'content-type': contentType, ...message.headers }
    } else if (cloudevents) {
      // Structured mode: the binding's content type says the value is a whole CloudEvent.
      message.headers = { 'content-type': contentType ?? PROFILES.cloudevents.contentType, ...message.headers }
    }
    for (const key of Object.keys(declared.message ?? {})) origin[`message.${key}`] = `${here}.message.${key}`
    for (const key of Object.keys(entry?.message ?? {})) origin[`message.${key}`] = `${here}.formats.${i}.message.${key}`
    const formatSpec = {
      envelope,
      ...(contentType === undefined ? {} : { contentType }),
      ...(Object.keys(message).length === 0 ? {} : { message })
    }
    const protection = protectionOf(here, info, protects, keys, problems, protectsUsed)
    if (protection === null) continue
    const scope = {
      type: info.type,
      schema: protection?.schema ?? info.schema,
      ...(info.aggregate === undefined ? {} : { aggregate: info.aggregate }),
      source: options.source,
      module: options.module ?? options.source,
      // What its data conforms to is not the type's schema: its envelope says so.
      ...(protection === undefined ? {} : { dataSchema: dataSchemaUri(info.type, name) })
    }
    try {
      const format = compileWireFormat(formatSpec, broker, scope)
      const withProtection = protection === undefined ? format : { ...format, protection }
      formats.set(info.type, binary ? { ...withProtection, envelope: 'cloudevents' } : withProtection)
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err
      for (const message of err.message.split('\n')) {
        const line = located(message, origin, info.type)
        // A mistake shared by several types is one line, naming the first type.
        const key = line.replace(` (${info.type})`, '')
        if (!seen.has(key)) problems.push(line)
        seen.add(key)
      }
    }
  }
  entries.forEach((e, i) => {
    if (!used.has(i)) warnings.push(`${here}.formats.${i} (${e.spec.types.join(', ')}) matches no type routed to ${name}`)
  })
  // Refused, not warned: a misspelt type would send the fields it meant to protect in clear.
  for (const { pattern } of protects) {
    if (!protectsUsed.has(pattern)) problems.push(`${here}.protect.${pattern}: matches no type routed to ${name}`)
  }
  // FIFO deduplication is queue-wide: an id that leaves the tenant out lets one tenant's event
  // suppress another's with the same values for five minutes. Allowed (a team's own publisher may
  // compute it so), said at every start.
  const fifo = broker === 'sqs' && String(declared.queueUrl).endsWith('.fifo')
  const dedupes = [declared.message, ...(declared.formats ?? []).map(f => f.message)]
    .map(m => m?.deduplicationId)
    .filter(d => d !== undefined)
  if (fifo && dedupes.some(d => !/\{\{\s*tenant\b/.test(JSON.stringify(d)))) {
    warnings.push(`${here}: a message.deduplicationId without {{tenant}}: within SQS's 5-minute window, ` +
      'one tenant\'s event is dropped as a duplicate of another tenant\'s with the same values')
  }
  return formats
}

/**
 * A type's protection at a destination: the rules of every `protect` pattern that matches it (one
 * pointer named twice must say the same action). Undefined when none applies; null when the rules
 * are wrong (the problem is added, naming the file's field, the type and the pointer).
 */
function protectionOf (
  here: string,
  info: TypeInfo,
  protects: readonly { pattern: string, rules: Record<string, ProtectAction>, match: (type: string) => boolean }[],
  keys: ProtectionKeys | undefined,
  problems: string[],
  used: Set<string>
): Protection | undefined | null {
  const rules = new Map<string, { action: ProtectAction, pattern: string }>()
  for (const { pattern, rules: its, match } of protects) {
    if (!match(info.type)) continue
    used.add(pattern)
    for (const [pointer, action] of Object.entries(its)) {
      const earlier = rules.get(pointer)
      if (earlier !== undefined && earlier.action !== action) {
        problems.push(`${here}.protect.${pattern}.${pointer} (${info.type}): ${action}, ` +
          `where ${here}.protect.${earlier.pattern} says ${earlier.action}`)
        return null
      }
      rules.set(pointer, { action, pattern })
    }
  }
  if (rules.size === 0) return undefined
  try {
    return compileProtection([...rules].map(([pointer, { action }]) => ({ pointer, action })), {
      type: info.type,
      schema: info.schema,
      keyFields: keyFieldsOf(info)
    }, keys)
  } catch (err) {
    if (!(err instanceof ProtectionError)) throw err
    problems.push(`${here}.protect.${rules.get(err.pointer)?.pattern ?? '*'}.${err.pointer} (${info.type}): ${err.message}`)
    return null
  }
}

/** The data fields the catalog makes a type's keys of: protecting one would change where its events go. */
function keyFieldsOf (info: TypeInfo): Map<string, string> {
  const fields = new Map<string, string>()
  for (const [, field] of (info.routingKey ?? '').matchAll(/\{([^}]+)\}/g)) if (field !== undefined) fields.set(field, 'routing key')
  if (info.dedupeKey !== undefined) fields.set(info.dedupeKey, 'dedupe key')
  if (info.groupKey !== undefined) fields.set(info.groupKey, 'group key (FIFO MessageGroupId)')
  if (info.aggregate !== undefined) fields.set(info.aggregate.idField, 'aggregate id')
  return fields
}

/** `message.groupId: why` -> `destinations.x.formats.0.message.groupId (survey.refused): why`. */
function located (message: string, origin: Record<string, string>, type: string): string {
  const where = /^(envelope|message\.[A-Za-z]+)((?:\.[^:]*)?): (.*)$/s
  if (!where.test(message)) return `${origin.envelope ?? 'envelope'} (${type}): ${message}`
  return message.replace(where, (_match, field: string, path: string, why: string) => `${origin[field] ?? field}${path} (${type}): ${why}`)
}
