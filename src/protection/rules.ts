import type { ProtectionKeys } from './keys.js'
import { encryptValue, ENCRYPTED_PATTERN, hashValue, HASHED_PATTERN } from './values.js'
import { pointerOf, pointerTokens } from '../validation/pointer.js'

export const PROTECT_ACTIONS = ['drop', 'hash', 'encrypt'] as const
export type ProtectAction = typeof PROTECT_ACTIONS[number]

/** One field a destination gets protected: its JSON Pointer into the data, and how. */
export interface ProtectRule {
  pointer: string
  action: ProtectAction
}

/** What is known of a type before its events arrive: its data's schema, and the fields its keys are made of. */
export interface ProtectedType {
  type: string
  schema: object
  /** Data fields the catalog makes the routing key, dedupe key, group key or aggregate id of. */
  keyFields: ReadonlyMap<string, string>
}

/** One destination's protection of one type, compiled at start. */
export interface Protection {
  readonly rules: readonly ProtectRule[]
  /** The data schema of what the destination gets: hashed and encrypted fields as strings, dropped ones gone. */
  readonly schema: object
  /**
   * An event's data as the destination gets it, every rule applied: the same object when nothing
   * changes, else a copy (the data itself is never changed). `counted`: false for what is not
   * sent (documents, checks), which the metrics skip.
   */
  apply (data: Record<string, unknown>, event: EventPlace, counted?: boolean): Record<string, unknown>
  /** Values protected so far, per action (metrics read them). */
  readonly counts: Record<ProtectAction, number>
}

/** Whose event a value belongs to: the tenant (its keys) and the type (an encrypted value's additional data). */
export interface EventPlace {
  tenantId: string
  type: string
}

/** A rule the start refuses; the caller adds the file, destination and type. */
export class ProtectionError extends Error {
  constructor (readonly pointer: string, message: string) {
    super(message)
    this.name = 'ProtectionError'
  }
}

type Schema = Record<string, unknown>
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** RFC 6901: `/a/b~1c` -> ['a', 'b/c']. */
export function parsePointer (pointer: string): string[] {
  if (!pointer.startsWith('/') || pointer === '/') {
    throw new ProtectionError(pointer, 'must be a JSON Pointer to a field of the data, e.g. /transcript or /caller/phone')
  }
  if (/~[^01]|~$/.test(pointer)) throw new ProtectionError(pointer, 'has a ~ that is not ~0 or ~1 (RFC 6901)')
  return pointerTokens(pointer)
}

/** The schemas (a union's variants included) that hold `token` as a property, in `node`. */
function holders (node: unknown): Schema[] {
  if (!isObject(node)) return []
  const variants = ['anyOf', 'oneOf', 'allOf'].flatMap(k => Array.isArray(node[k]) ? node[k] as unknown[] : [])
  return [node, ...variants.flatMap(holders)].filter(s => isObject(s.properties))
}

/**
 * Whether every value `node` allows is an object (or null): a field inside it is then always a
 * field, never part of a string or an array that would go out as it came. A schema without a
 * `type` allows anything.
 */
function objectsOnly (node: unknown): boolean {
  if (!isObject(node)) return false
  const allOf = Array.isArray(node.allOf) ? node.allOf as unknown[] : []
  if (allOf.some(objectsOnly)) return true
  const union = [...Array.isArray(node.anyOf) ? node.anyOf as unknown[] : [], ...Array.isArray(node.oneOf) ? node.oneOf as unknown[] : []]
  if (union.length > 0) return union.every(v => objectsOnly(v) || (isObject(v) && v.type === 'null'))
  const types = Array.isArray(node.type) ? node.type as unknown[] : [node.type]
  return types.includes('object') && types.every(t => t === 'object' || t === 'null')
}

/**
 * Every schema object that defines the field at `tokens` (several under unions), with its parent;
 * a ProtectionError when a field on the way may be something other than an object.
 */
function locate (schema: unknown, tokens: readonly string[], pointer: string): { parent: Schema, key: string }[] {
  let nodes: unknown[] = [schema]
  let found: { parent: Schema, key: string }[] = []
  tokens.forEach((token, i) => {
    if (i > 0 && !nodes.every(objectsOnly)) {
      const outer = pointerOf(tokens.slice(0, i))
      throw new ProtectionError(pointer, `is inside ${outer}, which may be other than an object (its schema allows it): ` +
        `protect ${outer} as a whole`)
    }
    found = nodes.flatMap(holders).flatMap(parent => {
      const properties = parent.properties as Schema
      return Object.hasOwn(properties, token) ? [{ parent, key: token }] : []
    })
    nodes = found.map(f => (f.parent.properties as Schema)[f.key])
  })
  return found
}

function allowsNull (schema: unknown): boolean {
  if (!isObject(schema)) return schema === true
  if (schema.type === 'null' || schema.const === null) return true
  if (Array.isArray(schema.type) && schema.type.includes('null')) return true
  if (Array.isArray(schema.enum) && schema.enum.includes(null)) return true
  return ['anyOf', 'oneOf'].some(k => Array.isArray(schema[k]) && (schema[k] as unknown[]).some(allowsNull))
}

function protectedSchema (action: 'hash' | 'encrypt', original: unknown): Schema {
  const text: Schema = action === 'hash'
    ? { type: 'string', pattern: HASHED_PATTERN, description: 'Protected: HMAC-SHA256 of the value, per tenant (docs/protection.md)' }
    : { type: 'string', pattern: ENCRYPTED_PATTERN, description: 'Protected: the value encrypted, per tenant (docs/protection.md)' }
  return allowsNull(original) ? { anyOf: [text, { type: 'null' }] } : text
}

const SAME = Symbol('same')
const DROP = Symbol('drop')

/** `obj` with the value at `tokens[i..]` changed by `change`; `obj` itself when nothing changes. Paths are copied, not edited. */
function rewrite (obj: unknown, tokens: readonly string[], i: number, change: (value: unknown) => unknown): unknown {
  const key = tokens[i] as string
  if (!isObject(obj) || !Object.hasOwn(obj, key)) return obj
  const child = obj[key]
  const next = i === tokens.length - 1 ? change(child) : rewrite(child, tokens, i + 1, change)
  if (next === SAME || next === child) return obj
  const copy = { ...obj }
  if (next === DROP) delete copy[key]
  else Object.defineProperty(copy, key, { value: next, enumerable: true, writable: true, configurable: true })
  return copy
}

/**
 * Compiles one destination's rules for one type. Throws a ProtectionError for a pointer the type's
 * schema does not define, one the catalog makes a key of, or rules that overlap; `keys` is needed
 * when some rule hashes or encrypts.
 */
export function compileProtection (rules: readonly ProtectRule[], type: ProtectedType, keys: ProtectionKeys | undefined): Protection {
  const schema = JSON.parse(JSON.stringify(type.schema)) as Schema
  const compiled = rules.map(rule => ({ ...rule, tokens: parsePointer(rule.pointer) }))
  for (const a of compiled) {
    for (const b of compiled) {
      if (a !== b && b.pointer.startsWith(`${a.pointer}/`)) {
        throw new ProtectionError(b.pointer, `is inside ${a.pointer}, which is protected already (${a.action})`)
      }
    }
    const [top] = a.tokens
    const key = a.tokens.length === 1 && top !== undefined ? type.keyFields.get(top) : undefined
    if (key !== undefined) {
      throw new ProtectionError(a.pointer, `is the field the catalog makes the event's ${key} of; it cannot be protected`)
    }
    const places = locate(type.schema, a.tokens, a.pointer)
    if (places.length === 0) throw new ProtectionError(a.pointer, `is not a field of ${type.type} (its schema does not define it)`)
    if (a.action !== 'drop' && keys === undefined) {
      throw new ProtectionError(a.pointer, `${a.action} needs PROTECTION_KEYS_FILE, which is not set`)
    }
    for (const { parent, key: field } of locate(schema, a.tokens, a.pointer)) {
      const properties = parent.properties as Schema
      if (a.action === 'drop') {
        delete properties[field]
        if (Array.isArray(parent.required)) parent.required = (parent.required as unknown[]).filter(r => r !== field)
      } else {
        properties[field] = protectedSchema(a.action, properties[field])
      }
    }
  }
  const counts: Record<ProtectAction, number> = { drop: 0, hash: 0, encrypt: 0 }
  const step = (pointer: string, action: ProtectAction) => {
    switch (action) {
      case 'drop': return (_event: EventPlace, by: number) => (_value: unknown) => { counts.drop += by; return DROP }
      case 'hash': return (event: EventPlace, by: number) => (value: unknown) => {
        // null says "no value": it stays null, as the schema shows.
        if (value === null) return SAME
        counts.hash += by
        return hashValue(keys as ProtectionKeys, event.tenantId, value)
      }
      case 'encrypt': return (event: EventPlace, by: number) => (value: unknown) => {
        if (value === null) return SAME
        counts.encrypt += by
        return encryptValue(keys as ProtectionKeys, { tenant: event.tenantId, type: event.type, pointer }, value)
      }
    }
  }
  const steps = compiled.map(({ pointer, action, tokens }) => ({ step: step(pointer, action), tokens }))
  return {
    rules: rules.map(({ pointer, action }) => ({ pointer, action })),
    schema,
    counts,
    apply (data, event, counted = true) {
      let out: unknown = data
      for (const { step, tokens } of steps) out = rewrite(out, tokens, 0, step(event, counted ? 1 : 0))
      return out as Record<string, unknown>
    }
  }
}
