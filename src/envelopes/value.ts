import { createHash } from 'node:crypto'
import type { GatewayEvent } from './event.js'
import { parseSegments, TemplateError, type Expression, type Literal } from './expression.js'
import { isPrintable, jsonTypeOf, resolveField, type Facts, type Field, type FieldScope, type JsonType } from './fields.js'

// One value of a template, compiled for one type: a string with placeholders, or a function
// (`{"$sha256": "..."}`). What it reads, what it can be, and how to get it for a message.

export type Getter = (event: GatewayEvent, traceparent: string | undefined) => unknown

export interface Value {
  facts: Facts
  /** Known at start: the whole value is a constant. */
  constant?: { value: unknown }
  get: Getter
  /** The event fields it reads (`traceparent`, `data.call_id`, ...). */
  reads: ReadonlySet<string>
  /** Where a whole-value placeholder puts one field as it is (for tools that read envelopes back). */
  field?: string
  /** The text around the placeholders, when the value is a text made of several parts. */
  texts?: readonly string[]
}

const SCALAR: ReadonlySet<JsonType> = new Set(['string', 'number', 'integer', 'boolean'])
const STRING: ReadonlySet<JsonType> = new Set(['string'])

/** The functions a template may call, as `{"$name": "<text with placeholders>"}`. */
const FUNCTIONS: Record<string, { facts: Omit<Facts, 'optional'>, apply: (text: string) => string }> = {
  $sha256: {
    facts: { types: STRING, maxLength: 64, ascii: true, nonEmpty: true },
    apply: text => createHash('sha256').update(text).digest('hex')
  }
}
export const FUNCTION_NAMES = Object.keys(FUNCTIONS)

const constantValue = (value: unknown, facts: Facts): Value => ({ facts, constant: { value }, get: () => value, reads: new Set() })

/** A literal as a value (a header's `2` or `true`). */
export const literalValue = (value: Literal): Value => constantValue(value, literalFacts(value))

function literalFacts (value: Literal): Facts {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  return { types: new Set([jsonTypeOf(value)]), optional: false, maxLength: text.length, ascii: isPrintable(text), nonEmpty: text !== '' }
}

/** `a ?? b ?? 'x'`: the first that is there (neither missing nor null), else the literal. */
function alternatives (expression: Expression, scope: FieldScope): Value {
  const fields: Field[] = expression.fields.map(name => resolveField(name, scope))
  const fallback = expression.fallback
  const chain: Facts[] = [...fields.map(f => f.facts), ...(fallback === undefined ? [] : [literalFacts(fallback.value)])]
  // Never empty: parseExpression refuses a placeholder without a field.
  const last = chain[chain.length - 1] as Facts
  // Null only from the last one: `??` passes over a null to the next.
  const types = new Set<JsonType>(chain.flatMap(f => [...f.types].filter(t => t !== 'null')))
  if (last.types.has('null')) types.add('null')
  const lengths = chain.map(f => f.maxLength)
  const facts: Facts = {
    types,
    optional: last.optional,
    ascii: chain.every(f => f.ascii),
    nonEmpty: chain.every(f => f.nonEmpty),
    ...(lengths.every(l => l !== undefined) ? { maxLength: Math.max(...lengths) } : {}),
    ...(chain.length === 1 && fields[0]?.facts.pointer !== undefined ? { pointer: fields[0].facts.pointer } : {})
  }
  const reads = new Set(expression.fields)
  const only = fields.length === 1 ? fields[0] : undefined
  if (only !== undefined && fallback === undefined) {
    if (only.constant !== undefined) return { ...constantValue(only.constant, facts), field: only.name }
    return { facts, get: only.get, reads, field: only.name }
  }
  const getters = fields.map(f => f.get)
  const otherwise = fallback?.value
  return {
    facts,
    reads,
    // One field, or its fallback literal, is still that field where it is; of several, which
    // one is there depends on the event (tools see them all, as a text's).
    ...(only === undefined ? {} : { field: only.name }),
    get: (event, traceparent) => {
      let value: unknown
      for (const get of getters) {
        value = get(event, traceparent)
        if (value !== undefined && value !== null) return value
      }
      // The literal, else what the last field gave (missing, or null).
      return fallback === undefined ? value : otherwise
    }
  }
}

/** Why a value cannot be part of a text, or undefined when it can. */
function notText (source: string, facts: Facts, scope: FieldScope): string | undefined {
  const kinds = [...facts.types].filter(t => !SCALAR.has(t) && t !== 'null')
  if (kinds.length > 0) {
    return `{{${source}}} can be ${kinds.join(' or ')} in ${scope.type}; only text, numbers and booleans make part of a text`
  }
  if (facts.optional || facts.types.has('null')) {
    const missing = `may be missing${facts.types.has('null') ? ' or null' : ''}`
    return `{{${source}}} ${missing} in ${scope.type}; give it a fallback: {{${source} ?? ''}}`
  }
  return undefined
}

/**
 * A template string: one placeholder alone keeps the value's JSON type (`"{{data}}"` is the data
 * object, `"{{data.duration}}"` a number); placeholders among text make a text, and then each must
 * be a scalar that is always there (or have a fallback).
 */
export function compileText (template: string, scope: FieldScope): Value {
  const segments = parseSegments(template)
  if (segments.length === 0) return constantValue('', literalFacts(''))
  const only = segments[0]
  if (segments.length === 1 && only !== undefined) {
    if ('text' in only) return constantValue(only.text, literalFacts(only.text))
    return alternatives(only.expression, scope)
  }
  const parts: (string | Value)[] = segments.map(s => {
    if ('text' in s) return s.text
    const value = alternatives(s.expression, scope)
    const why = notText(s.source, value.facts, scope)
    if (why !== undefined) throw new TemplateError(why)
    return value.constant === undefined ? value : String(value.constant.value)
  })
  return concat(parts)
}

/** Text and values joined: constants merged, the rest read per message. */
function concat (parts: readonly (string | Value)[]): Value {
  const merged: (string | Value)[] = []
  for (const p of parts) {
    const previous = merged[merged.length - 1]
    if (typeof p === 'string' && typeof previous === 'string') merged[merged.length - 1] = previous + p
    else merged.push(p)
  }
  const values = merged.filter((p): p is Value => typeof p !== 'string')
  const texts = merged.filter((p): p is string => typeof p === 'string')
  const lengths = values.map(v => v.facts.maxLength)
  const facts: Facts = {
    types: STRING,
    optional: false,
    ascii: texts.every(isPrintable) && values.every(v => v.facts.ascii),
    nonEmpty: texts.some(t => t !== '') || values.some(v => v.facts.nonEmpty),
    ...(lengths.every(l => l !== undefined) ? { maxLength: texts.join('').length + lengths.reduce((n, l) => n + l, 0) } : {})
  }
  if (values.length === 0) return constantValue(texts.join(''), facts)
  const reads = new Set(values.flatMap(v => [...v.reads]))
  return {
    facts,
    reads,
    texts,
    get: (event, traceparent) => {
      let text = ''
      for (const p of merged) text += typeof p === 'string' ? p : String(p.get(event, traceparent))
      return text
    }
  }
}

/** `{"$sha256": "..."}`: undefined when the object is not a function call. */
export function compileFunction (template: Record<string, unknown>, scope: FieldScope): Value | undefined {
  const keys = Object.keys(template)
  const name = keys.find(k => k.startsWith('$'))
  if (name === undefined) return undefined
  const fn = FUNCTIONS[name]
  if (fn === undefined) {
    throw new TemplateError(`${name} is not a function (the functions: ${FUNCTION_NAMES.join(', ')}); a key may not start with $`)
  }
  const argument = template[name]
  if (keys.length !== 1 || typeof argument !== 'string') {
    throw new TemplateError(`${name} takes one text: {"${name}": "{{type}}:{{data.call_id}}"}`)
  }
  const input = compileText(argument, scope)
  const why = notText(argument, input.facts, scope)
  if (why !== undefined) throw new TemplateError(why)
  const facts = { ...fn.facts, optional: false }
  if (input.constant !== undefined) return constantValue(fn.apply(String(input.constant.value)), facts)
  return { facts, reads: input.reads, get: (event, traceparent) => fn.apply(String(input.get(event, traceparent))) }
}
