import type { GatewayEvent } from './event.js'
import { TemplateError } from './expression.js'
import { dataKeys, type FieldScope } from './fields.js'
import { compileFunction, compileText, type Value } from './value.js'

// An envelope declared as JSON with placeholders, compiled at start for one event type into the
// few string concatenations that write it: the parts fixed for the type and destination are
// JSON text made once; only the event's own values are encoded per message.

export type JsonTemplate = null | boolean | number | string | JsonTemplate[] | { [key: string]: JsonTemplate }

/** The key that merges an object's fields into the object around it: `"...": "{{data}}"`. */
export const SPREAD = '...'

type Emit = (event: GatewayEvent, traceparent: string | undefined) => string
type Part = string | Emit

/** A value that is always there is parts of text; one that may be missing is an emitter that may give nothing. */
type Node =
  | { optional: false, parts: Part[] }
  | { optional: true, emit: (event: GatewayEvent, traceparent: string | undefined) => string | undefined }

/**
 * Where the compiled template puts what, for the tools that read envelopes back (verify, tail): a
 * field as it is, an object's fields merged, or a text made of fields (and a function's input).
 */
export type Placement =
  | { path: (string | number)[], field: string }
  | { path: (string | number)[], spread: string }
  | { path: (string | number)[], text: string[] }

export interface CompiledTemplate {
  encode: (event: GatewayEvent, traceparent?: string) => string
  /** The event fields it reads. */
  reads: ReadonlySet<string>
  placements: Placement[]
}

interface Compiler {
  scope: FieldScope
  reads: Set<string>
  placements: Placement[]
}

const json = (value: unknown) => JSON.stringify(value)

function leaf (value: Value, at: (string | number)[], c: Compiler): Node {
  for (const r of value.reads) c.reads.add(r)
  if (value.field !== undefined) c.placements.push({ path: at, field: value.field })
  else if (value.reads.size > 0) c.placements.push({ path: at, text: [...value.reads] })
  if (value.constant !== undefined) return { optional: false, parts: [json(value.constant.value)] }
  const get = value.get
  if (value.facts.optional) {
    return {
      optional: true,
      emit: (event, traceparent) => {
        const v = get(event, traceparent)
        return v === undefined ? undefined : json(v)
      }
    }
  }
  // Never missing by the schema; should a value be missing all the same, the JSON stays valid.
  return { optional: false, parts: [(event, traceparent) => json(get(event, traceparent) ?? null)] }
}

function compileNode (template: JsonTemplate, at: (string | number)[], c: Compiler): Node {
  if (typeof template === 'string') return leaf(compileText(template, c.scope), at, c)
  if (template === null || typeof template !== 'object') return { optional: false, parts: [json(template)] }
  if (Array.isArray(template)) {
    const parts: Part[] = ['[']
    template.forEach((item, i) => {
      if (i > 0) parts.push(',')
      const node = within([...at, i], () => compileNode(item, [...at, i], c))
      // As JSON.stringify writes a missing array element.
      if (node.optional) parts.push((event, traceparent) => node.emit(event, traceparent) ?? 'null')
      else parts.push(...node.parts)
    })
    parts.push(']')
    return { optional: false, parts }
  }
  const call = compileFunction(template, c.scope)
  if (call !== undefined) return leaf(call, at, c)
  return compileObject(template, at, c)
}

interface Member { key: string, node: Node }

function compileObject (template: { [key: string]: JsonTemplate }, at: (string | number)[], c: Compiler): Node {
  const literalKeys = Object.keys(template).filter(k => k !== SPREAD)
  const members: (Member | { spread: Emit })[] = []
  for (const [key, value] of Object.entries(template)) {
    if (key === SPREAD) {
      members.push({ spread: spreadOf(value, literalKeys, at, c) })
      continue
    }
    members.push({ key: `${json(key)}:`, node: within([...at, key], () => compileNode(value, [...at, key], c)) })
  }
  const first = members[0]
  // The usual shape: the first member is always there, so every other one starts with a comma.
  if (first !== undefined && 'node' in first && !first.node.optional) {
    const parts: Part[] = ['{', first.key, ...first.node.parts]
    for (const m of members.slice(1)) {
      if ('spread' in m) parts.push(m.spread)
      else if (!m.node.optional) parts.push(`,${m.key}`, ...m.node.parts)
      else {
        const { key, node } = m
        parts.push((event, traceparent) => { const v = node.emit(event, traceparent); return v === undefined ? '' : `,${key}${v}` })
      }
    }
    parts.push('}')
    return { optional: false, parts }
  }
  // Otherwise the commas are decided per message.
  const emits = members.map(m => {
    if ('spread' in m) return (event: GatewayEvent, traceparent: string | undefined) => m.spread(event, traceparent).slice(1) || undefined
    const { key, node } = m
    if (node.optional) {
      return (event: GatewayEvent, traceparent: string | undefined) => {
        const v = node.emit(event, traceparent)
        return v === undefined ? undefined : key + v
      }
    }
    const write = joinParts(node.parts)
    return (event: GatewayEvent, traceparent: string | undefined) => key + write(event, traceparent)
  })
  return {
    optional: false,
    parts: [(event, traceparent) => {
      let text = ''
      for (const emit of emits) {
        const member = emit(event, traceparent)
        if (member !== undefined) text += text === '' ? member : `,${member}`
      }
      return `{${text}}`
    }]
  }
}

/**
 * `"...": "{{data}}"`: the object's fields, in its own order, among the template's. A field the
 * template also names is left out of the merge (JSON would have the key twice); for a type whose
 * schema closes the object, that is refused at start instead.
 */
function spreadOf (template: JsonTemplate, literalKeys: readonly string[], at: (string | number)[], c: Compiler): Emit {
  const where = `${at.length > 0 ? `at ${at.join('.')}: ` : ''}"${SPREAD}"`
  const value = typeof template === 'string' ? compileText(template, c.scope) : undefined
  if (value === undefined || value.field === undefined || !value.field.startsWith('data') ||
    [...value.facts.types].some(t => t !== 'object') || value.facts.optional) {
    throw new TemplateError(`${where} merges an object of the data: "{{data}}", or "{{data.<field>}}" of an object that is always there`)
  }
  for (const r of value.reads) c.reads.add(r)
  c.placements.push({ path: at, spread: value.field })
  const keys = dataKeys(c.scope, value.field)
  const clash = keys.names.filter(k => literalKeys.includes(k))
  if (clash.length > 0 && keys.closed) {
    const has = `${value.field} of ${c.scope.type} has ${clash.length === 1 ? 'it' : 'them'}`
    throw new TemplateError(`${where} would write ${clash.join(', ')} twice: ${has}, and so does the template`)
  }
  const get = value.get
  if (keys.closed && clash.length === 0) {
    return (event, traceparent) => {
      const text = json(get(event, traceparent))
      return text.length > 2 ? `,${text.slice(1, -1)}` : ''
    }
  }
  const skip = new Set(literalKeys)
  return (event, traceparent) => {
    // An object always there, by the schema (checked above).
    const object = get(event, traceparent) as Record<string, unknown>
    let text = ''
    for (const [k, v] of Object.entries(object)) if (!skip.has(k) && v !== undefined) text += `,${json(k)}:${json(v)}`
    return text
  }
}

/** Errors say where in the template they are, once, at the deepest place. */
function within<T> (at: (string | number)[], compile: () => T): T {
  try {
    return compile()
  } catch (err) {
    if (err instanceof TemplateError && !err.message.startsWith('at ')) throw new TemplateError(`at ${at.join('.')}: ${err.message}`)
    throw err
  }
}

function joinParts (parts: readonly Part[]): Emit {
  const merged: Part[] = []
  for (const p of parts) {
    const previous = merged[merged.length - 1]
    if (typeof p === 'string' && typeof previous === 'string') merged[merged.length - 1] = previous + p
    else merged.push(p)
  }
  if (merged.length === 1 && typeof merged[0] === 'string') {
    const text = merged[0]
    return () => text
  }
  return (event, traceparent) => {
    let text = ''
    for (const p of merged) text += typeof p === 'string' ? p : p(event, traceparent)
    return text
  }
}

/** Compiles an envelope template for one type: a template error names the field it is at. */
export function compileTemplate (template: JsonTemplate, scope: FieldScope): CompiledTemplate {
  const c: Compiler = { scope, reads: new Set(), placements: [] }
  const node = compileNode(template, [], c)
  const write = node.optional
    ? (event: GatewayEvent, traceparent: string | undefined) => node.emit(event, traceparent) ?? 'null'
    : joinParts(node.parts)
  // Without one, the message carries the caller's trace context as it came.
  return { encode: (event, traceparent = event.traceparent) => write(event, traceparent), reads: c.reads, placements: c.placements }
}
