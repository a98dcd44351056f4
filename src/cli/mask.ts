import type { Catalog } from '../catalog/index.js'
import type { EnvelopeFields } from './envelope-fields.js'

export const REDACTED = '[redacted]'

/** Sensitive data fields per type, from the whole catalog (EVENT_CATALOG_DIR types included). */
export function sensitiveFieldsOf (catalog: Catalog): Map<string, readonly string[]> {
  return new Map(catalog.list().filter(e => (e.sensitive ?? []).length > 0).map(e => [e.type, e.sensitive ?? []]))
}

/**
 * The envelope with the catalog's sensitive fields of its data masked, wherever its profile keeps
 * the data (`data`, `payload`). A type the catalog does not know is printed as it came.
 */
export function maskEnvelope (envelope: Record<string, unknown>, fields: EnvelopeFields, sensitive: ReadonlyMap<string, readonly string[]>): Record<string, unknown> {
  const masked = sensitive.get(String(envelope[fields.type])) ?? []
  const data = envelope[fields.data]
  if (masked.length === 0 || typeof data !== 'object' || data === null || Array.isArray(data)) return envelope
  const copy: Record<string, unknown> = { ...(data as Record<string, unknown>) }
  for (const f of masked) if (f in copy && copy[f] !== null) copy[f] = REDACTED
  return { ...envelope, [fields.data]: copy }
}
