import type { Ajv } from 'ajv'
import { ConfigError, messageOf } from '../errors.js'
import { eventTypeAllowList, type Config } from '../config/index.js'
import { batch } from './batch.js'
import { comms } from './comms.js'
import { drafts } from './drafts.js'
import { loadExternalEntries } from './external.js'
import { platform } from './platform.js'
import { survey } from './survey.js'
import { firstExample, type CatalogEntry } from './types.js'
import type { FieldError } from '../errors.js'
import { compileBodyValidator, type Validator } from '../validation/index.js'

export { firstExample, type CatalogEntry } from './types.js'

export const BUILTIN_ENTRIES: readonly CatalogEntry[] = [...survey, ...batch, ...platform, ...comms, ...drafts]

export const TYPE_NAME_PATTERN = '^[a-z][a-z0-9_-]*(\\.[a-z0-9_-]+)*$'
const typeNameRe = new RegExp(TYPE_NAME_PATTERN)

export interface CompiledEntry extends CatalogEntry {
  validate: Validator
}

export class Catalog {
  readonly #types = new Map<string, CompiledEntry>()

  constructor (entries: readonly CatalogEntry[], ajv: Ajv) {
    for (const entry of entries) {
      if (!typeNameRe.test(entry.type) || entry.type.length > 128) {
        throw new ConfigError(`event type '${entry.type}': name must match ${TYPE_NAME_PATTERN}`)
      }
      if (this.#types.has(entry.type)) throw new ConfigError(`event type '${entry.type}' is defined twice`)
      let validate: Validator
      try {
        validate = compileBodyValidator(ajv, entry.schema)
      } catch (err) {
        throw new ConfigError(`event type '${entry.type}': schema does not compile: ${messageOf(err)}`)
      }
      const example = firstExample(entry)
      if (example === undefined || !validate(example)) {
        throw new ConfigError(`event type '${entry.type}': the schema's first example must be a valid payload`)
      }
      this.#types.set(entry.type, { ...entry, validate })
    }
  }

  get (type: string): CompiledEntry | undefined {
    return this.#types.get(type)
  }

  list (): CompiledEntry[] {
    return [...this.#types.values()]
  }

  get size (): number {
    return this.#types.size
  }
}

/** The catalog a config asks for: built-in types, EVENT_CATALOG_DIR's, narrowed by EVENT_TYPES. */
export function loadCatalog (config: Pick<Config, 'EVENT_CATALOG_DIR' | 'EVENT_TYPES'>, ajv: Ajv): Catalog {
  const extra = config.EVENT_CATALOG_DIR === undefined ? [] : loadExternalEntries(config.EVENT_CATALOG_DIR, ajv)
  return new Catalog(selectEntries(extra, eventTypeAllowList(config)), ajv)
}

/** Built-in types plus extra ones, narrowed to the allow-list when one is given. */
export function selectEntries (extra: readonly CatalogEntry[], allow: readonly string[] | undefined): CatalogEntry[] {
  const all = [...BUILTIN_ENTRIES, ...extra]
  if (allow === undefined) return all
  const known = new Set(all.map(e => e.type))
  const unknown = allow.filter(t => !known.has(t))
  if (unknown.length > 0) throw new ConfigError(`EVENT_TYPES: unknown event type(s): ${unknown.join(', ')}`)
  const wanted = new Set(allow)
  return all.filter(e => wanted.has(e.type))
}

const placeholder = /\{([A-Za-z0-9_]+)\}/g

/** AMQP's limit on a routing key (a short string: at most 255 bytes). */
export const MAX_ROUTING_KEY_BYTES = 255

/**
 * The fields that make an event's routing key (`routingKeyFor`, made once with the event) too
 * long, as validation errors; undefined when the key fits. Checked before anything is published,
 * so a client learns which field to shorten.
 */
export function routingKeyErrors (entry: CatalogEntry, key: string, prefix = ''): FieldError[] | undefined {
  if (Buffer.byteLength(key) <= MAX_ROUTING_KEY_BYTES) return undefined
  const fields = [...entry.routingKey.matchAll(placeholder)].map(([, field]) => field).filter(f => f !== undefined)
  return fields.map(f => ({ path: `${prefix}/${f}`, message: `makes the routing key longer than ${MAX_ROUTING_KEY_BYTES} bytes` }))
}

/** Fills `{field}` placeholders of a routing key from the event data, one safe word per field. */
export function routingKeyFor (entry: CatalogEntry, data: Record<string, unknown>): string {
  return entry.routingKey.replace(placeholder, (_, field: string) => {
    const value = data[field]
    const word = typeof value === 'string' || typeof value === 'number' ? String(value) : ''
    // '.', '*' and '#' would change the topic's shape; anything odd becomes '_'
    return word === '' ? '_' : word.replace(/[^A-Za-z0-9_-]/g, '_')
  })
}
