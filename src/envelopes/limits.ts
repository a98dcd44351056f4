import type { FieldError } from '../errors.js'
import type { GatewayEvent } from './event.js'
import { isPrintable } from './fields.js'
import type { Value } from './value.js'

// What each broker takes of a message's fields besides the body, as AMQP and AWS document it, and
// the per-event check of what the start could not prove: an event that passes is never refused by
// its broker for these fields.

/** What a broker takes of one message field. */
export interface Limit {
  /** What the broker calls it, for messages. */
  what: string
  max: number
  unit: 'bytes' | 'characters'
  /** The characters it takes, and how to say so; `printable`: all of printable ASCII (a value proven so needs no check). */
  chars?: { test: (text: string) => boolean, says: string, printable?: true }
  /** An empty value is refused. */
  nonEmpty?: boolean
}

const PRINTABLE_ONLY = { test: isPrintable, says: 'printable ASCII only', printable: true } as const
const EVENT_BUS = { test: (text: string) => /^[/.\-_A-Za-z0-9:]+$/.test(text), says: 'letters, digits and / . - _ only, or an ARN' }

// Parts of a text are checked alone too (a fixed '.' between placeholders): the whole names '.' and
// '..', which Kafka refuses as well, are the adapter's to refuse (src/brokers/kafka/index.ts).
const KAFKA_TOPIC = { test: (text: string) => /^[A-Za-z0-9._-]+$/.test(text), says: 'letters, digits and . _ - only' }

// AMQP short strings are at most 255 bytes, and may be empty.
const SHORTSTR = (what: string): Limit => ({ what, max: 255, unit: 'bytes' })

export const LIMITS = {
  routingKey: SHORTSTR('routing key'),
  'properties.correlationId': SHORTSTR('correlationId property'),
  'properties.type': SHORTSTR('type property'),
  'properties.appId': SHORTSTR('appId property'),
  groupId: { what: 'SQS MessageGroupId', max: 128, unit: 'characters', chars: PRINTABLE_ONLY, nonEmpty: true },
  deduplicationId: { what: 'SQS MessageDeduplicationId', max: 128, unit: 'characters', chars: PRINTABLE_ONLY, nonEmpty: true },
  busName: { what: 'EventBridge EventBusName', max: 1600, unit: 'characters', chars: EVENT_BUS, nonEmpty: true },
  source: { what: 'EventBridge Source', max: 256, unit: 'characters', nonEmpty: true },
  detailType: { what: 'EventBridge DetailType', max: 128, unit: 'characters', nonEmpty: true },
  // Kafka refuses a topic name of other characters, or longer than 249.
  topic: { what: 'Kafka topic', max: 249, unit: 'characters', chars: KAFKA_TOPIC, nonEmpty: true }
} satisfies Record<string, Limit>

/** A message field its broker limits: the key fields and the AMQP properties a destination may declare. */
export type LimitedField = keyof typeof LIMITS

export const isLimitedField = (name: string): name is LimitedField => Object.hasOwn(LIMITS, name)

/** amqplib encodes a message's properties, headers included, into a 64 KiB buffer; some room is left for the rest. */
export const MAX_HEADER_BYTES = 60_000
/** What SQS takes in a String attribute: XML's characters. */
const SQS_TEXT = /^[\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u
/** SQS Number attributes: up to 38 significant digits, between -10^128 and 10^126. */
const significantDigits = (n: number) => String(n).replace(/e.*$/, '').replace(/[^0-9]/g, '').replace(/^0+/, '').length
const sqsNumber = (n: number) => Number.isFinite(n) && n > -1e128 && n < 1e126 && significantDigits(n) <= 38

/** Why a field's text breaks its broker's limit, or undefined. */
export function problemWith (text: string, limit: Limit): string | undefined {
  if (limit.nonEmpty === true && text === '') return `makes the ${limit.what} empty`
  if (limit.chars !== undefined && !limit.chars.test(text)) return `has characters the ${limit.what} cannot hold (${limit.chars.says})`
  const length = limit.unit === 'bytes' ? Buffer.byteLength(text) : text.length
  if (length > limit.max) return `makes the ${limit.what} longer than ${limit.max} ${limit.unit}`
  return undefined
}

/** One thing to check per event: a field against its limit, or a table of headers or attributes. */
export type Check =
  | { field: string, limit: Limit, value: Value }
  | { table: 'headers' | 'attributes', entries: readonly (readonly [string, Value])[] }

/**
 * A stand-in trace context for the check: the message's own is made later (its producer span), and
 * is at most this long.
 */
const LONGEST_TRACEPARENT = `00-${'0'.repeat(32)}-${'0'.repeat(16)}-00`

/** Field errors for what an event would make that its broker refuses, naming the data fields involved. */
export function checkValues (checks: readonly Check[], event: GatewayEvent): FieldError[] | undefined {
  let errors: FieldError[] | undefined
  const tp = event.traceparent ?? LONGEST_TRACEPARENT
  const report = (problem: string, field: string, v: Value) => {
    const pointers = [...v.reads].filter(r => r.startsWith('data.')).map(r => `/${r.slice(5).replaceAll('.', '/')}`)
    for (const path of pointers.length > 0 ? pointers : ['/']) (errors ??= []).push({ path, message: `${problem} (${field})` })
  }
  for (const check of checks) {
    if ('field' in check) {
      const problem = problemWith(String(check.value.get(event, tp)), check.limit)
      if (problem !== undefined) report(problem, check.field, check.value)
    } else if (check.table === 'attributes') {
      for (const [name, v] of check.entries) {
        const a = v.get(event, tp)
        if (typeof a === 'number' && !sqsNumber(a)) {
          report('makes a Number SQS attribute SQS does not take (over 38 digits, or beyond ±10^126)', `attributes.${name}`, v)
        } else if (typeof a === 'string' && !SQS_TEXT.test(a)) {
          report('has characters an SQS attribute cannot hold', `attributes.${name}`, v)
        }
      }
    } else {
      let bytes = 0
      for (const [name, v] of check.entries) {
        const h = v.get(event, tp)
        if (h !== undefined && h !== null) bytes += Buffer.byteLength(name) + Buffer.byteLength(String(h))
      }
      if (bytes > MAX_HEADER_BYTES) {
        for (const [name, v] of check.entries) {
          if (v.reads.size > 0 && [...v.reads].some(r => r.startsWith('data'))) {
            report(`makes the AMQP headers larger than ${MAX_HEADER_BYTES} bytes`, `headers.${name}`, v)
          }
        }
      }
    }
  }
  return errors
}
