import type { Catalog } from '../catalog/index.js'
import type { Placement } from '../envelopes/index.js'

export const REDACTED = '[redacted]'

/** Sensitive data fields per type, from the whole catalog (EVENT_CATALOG_DIR types included). */
export function sensitiveFieldsOf (catalog: Catalog): Map<string, readonly string[]> {
  return new Map(catalog.list().filter(e => (e.sensitive ?? []).length > 0).map(e => [e.type, e.sensitive ?? []]))
}

/**
 * The envelope with the type's sensitive data fields masked wherever its wire format puts them:
 * in the data object (`data`, `payload`), merged into the envelope (`"...": "{{data}}"`), one
 * field on its own (`"transcript": "{{data.transcript}}"`), or a text made with one (the whole
 * text); an object merged from a sensitive field is masked whole. Null values stay null. Nothing else
 * is changed; the envelope is copied, never written to.
 */
export function maskEnvelope (envelope: unknown, placements: readonly Placement[], sensitive: readonly string[]): unknown {
  if (sensitive.length === 0) return envelope
  const paths: (string | number)[][] = []
  const isSensitive = (field: string) => sensitive.some(f => field === `data.${f}` || field.startsWith(`data.${f}.`))
  for (const p of placements) {
    if ('spread' in p ? p.spread === 'data' : 'field' in p && p.field === 'data') paths.push(...sensitive.map(f => [...p.path, f]))
    else if ('spread' in p ? isSensitive(p.spread) : 'field' in p ? isSensitive(p.field) : p.text.some(isSensitive)) paths.push(p.path)
  }
  let masked = envelope
  for (const path of paths) masked = redact(masked, path)
  return masked
}

/** A copy of `value` with the value at `path` redacted, when it is there and not null. */
function redact (value: unknown, path: readonly (string | number)[]): unknown {
  const [key, ...rest] = path
  if (key === undefined) return value === null || value === undefined ? value : REDACTED
  if (typeof value !== 'object' || value === null) return value
  if (!Object.hasOwn(value, key)) return value
  const copy = Array.isArray(value) ? [...value] : { ...value }
  Reflect.set(copy, key, redact(Reflect.get(copy, key), rest))
  return copy
}
