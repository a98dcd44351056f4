import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import safeRegex from 'safe-regex2'
import { Type, type Static } from 'typebox'
import type { Ajv } from 'ajv'
import { codeOf, ConfigError, messageOf } from '../errors.js'
import type { CatalogEntry } from './types.js'
import { toFieldErrors } from '../validation/index.js'

// EVENT_CATALOG_DIR: one JSON file per extra event type, read at start, no rebuild needed.
export const ExternalEntrySchema = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 128 }),
  description: Type.String({ minLength: 1, maxLength: 2000 }),
  domain: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  routingKey: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  dedupeKey: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  groupKey: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  sensitive: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  aggregate: Type.Optional(Type.Object({
    type: Type.String({ minLength: 1, maxLength: 128 }),
    idField: Type.String({ minLength: 1, maxLength: 128 })
  }, { additionalProperties: false, description: 'draft-genie envelopes: aggregateType and the data field holding aggregateId' })),
  schema: Type.Object({
    type: Type.Literal('object'),
    examples: Type.Array(Type.Unknown(), { minItems: 1 })
  }, { additionalProperties: true })
}, { additionalProperties: false })

export type ExternalEntry = Static<typeof ExternalEntrySchema>

/**
 * What a custom schema may not hold: `$async` (validation would become a promise the routes do
 * not await) and patterns with nested quantifiers, which can take exponential time on a short
 * value and block the event loop (`^(a+)+$`). Each named by its JSON Pointer.
 */
export function unsafeSchemaParts (schema: unknown, at = '/schema'): string[] {
  if (typeof schema !== 'object' || schema === null) return []
  const found: string[] = []
  const exponential = (where: string, pattern: string) =>
    `${where}: the pattern ${JSON.stringify(pattern)} can take exponential time (nested quantifiers)`
  const entries: [string, unknown][] = Object.entries(schema)
  for (const [key, value] of entries) {
    const where = `${at}/${key}`
    if (key === '$async') found.push(`${where}: asynchronous schemas are not supported`)
    else if (key === 'pattern' && typeof value === 'string' && !isSafePattern(value)) found.push(exponential(where, value))
    else if (key === 'patternProperties' && typeof value === 'object' && value !== null) {
      for (const p of Object.keys(value)) if (!isSafePattern(p)) found.push(exponential(where, p))
    }
    if (typeof value === 'object' && value !== null) found.push(...unsafeSchemaParts(value, where))
  }
  return found
}

function isSafePattern (pattern: string): boolean {
  try {
    return safeRegex(pattern)
  } catch {
    return false
  }
}

export function loadExternalEntries (dir: string, ajv: Ajv): CatalogEntry[] {
  let files: string[]
  try {
    files = readdirSync(dir).filter(f => f.endsWith('.json')).sort()
  } catch (err) {
    throw new ConfigError(`EVENT_CATALOG_DIR: cannot read '${dir}': ${codeOf(err) ?? messageOf(err)}`)
  }
  const checkFile = ajv.compile<ExternalEntry>(ExternalEntrySchema)
  return files.map(file => {
    const path = join(dir, file)
    let json: unknown
    try {
      json = JSON.parse(readFileSync(path, 'utf8'))
    } catch (err) {
      throw new ConfigError(`EVENT_CATALOG_DIR: ${path} is not valid JSON: ${messageOf(err)}`)
    }
    if (!checkFile(json)) {
      const why = toFieldErrors(checkFile.errors).map(e => `${e.path} ${e.message}`).join('; ')
      throw new ConfigError(`EVENT_CATALOG_DIR: ${path} is not an event type definition: ${why}`)
    }
    const entry: ExternalEntry = json
    const unsafe = unsafeSchemaParts(entry.schema)
    if (unsafe.length > 0) throw new ConfigError(`EVENT_CATALOG_DIR: ${path} has a schema the gateway will not run: ${unsafe.join('; ')}`)
    return {
      type: entry.type,
      domain: entry.domain ?? 'custom',
      description: entry.description,
      // A JSON Schema from a file, not a TypeBox value: TObject is how the routes (and their type
      // provider) take every type's schema; Ajv compiles it like any other.
      schema: entry.schema as unknown as CatalogEntry['schema'],
      routingKey: entry.routingKey ?? entry.type,
      ...(entry.dedupeKey === undefined ? {} : { dedupeKey: entry.dedupeKey }),
      ...(entry.groupKey === undefined ? {} : { groupKey: entry.groupKey }),
      ...(entry.sensitive === undefined ? {} : { sensitive: entry.sensitive }),
      ...(entry.aggregate === undefined ? {} : { aggregate: entry.aggregate })
    }
  })
}
