import type { TObject } from 'typebox'

/** One event type the gateway accepts. Catalog files hold data only. */
export interface CatalogEntry {
  /** e.g. `call.ended`; becomes `POST /v1/events/call.ended` and the CloudEvents `type`. */
  type: string
  /** Which seed/domain the type belongs to; groups the types in Swagger. */
  domain: string
  description: string
  /** JSON Schema of the event's `data`; its first `examples` entry must be valid. */
  schema: TObject
  /** RabbitMQ routing key; `{field}` placeholders are filled from the data. */
  routingKey: string
  /** Data field that identifies a duplicate (SQS FIFO deduplication). */
  dedupeKey?: string
  /** Data field whose value is the SQS FIFO MessageGroupId (default: the tenant). */
  groupKey?: string
  /** Data fields that must never reach a log line (transcripts, free text, PII). */
  sensitive?: string[]
  /** The aggregate the event is about (draft-genie envelopes): its type and the data field with its id. */
  aggregate?: { type: string, idField: string }
}

export function defineEntries (domain: string, entries: Omit<CatalogEntry, 'domain'>[]): CatalogEntry[] {
  return entries.map(e => ({ ...e, domain }))
}

/** The first example of a type's schema: a valid payload (the catalog checks it at start). */
export function firstExample (entry: Pick<CatalogEntry, 'schema'>): Record<string, unknown> | undefined {
  const examples = 'examples' in entry.schema ? entry.schema.examples : undefined
  const first: unknown = Array.isArray(examples) ? examples[0] : undefined
  // One that is not an object is no valid payload either: the catalog refuses the type all the same.
  return isObject(first) ? first : undefined
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
