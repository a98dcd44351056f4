import type { GatewayEvent } from '../envelopes/event.js'
import type { WireMessage } from '../envelopes/index.js'
import type { OutgoingEvent } from '../brokers/broker.js'

/**
 * Tenants are spread over this many buckets; a PostgreSQL replica relays a few buckets at a time,
 * so a tenant's events (all in one bucket) are published by one replica at a time, in order.
 */
export const BUCKETS = 32

/** A bucket per tenant, the same on every replica (FNV-1a of its id). */
export function bucketOf (tenant: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < tenant.length; i++) {
    hash ^= tenant.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % BUCKETS
}

/** A SpoolRow's columns, in the order both stores write them. */
export const ROW_COLUMNS = 'destination, bucket, tenant, event_id, type, meta, body, content_type, traceparent, bytes, accepted_at'

/**
 * A SpoolRow's column definitions, shared by the waiting table and the dead letters, in either
 * store's type names (SQLite's INTEGER is 64-bit either way).
 */
export function rowColumnsDdl (types: { int: string, bigint: string }): string {
  return [
    'destination text NOT NULL', `bucket ${types.int} NOT NULL`, 'tenant text NOT NULL', 'event_id text NOT NULL', 'type text NOT NULL',
    'meta text NOT NULL', 'body text NOT NULL', 'content_type text NOT NULL', 'traceparent text', `bytes ${types.int} NOT NULL`,
    `accepted_at ${types.bigint} NOT NULL`
  ].join(',\n        ')
}

/** An event as the outbox keeps it: its envelope as the destination will get it, serialized once. */
export interface SpoolRow {
  destination: string
  bucket: number
  tenant: string
  eventId: string
  type: string
  /** The event's ids, context and keys (no data: the body has it) as JSON, for the broker's headers. */
  meta: string
  body: string
  contentType: string
  traceparent: string | null
  /** Of the body, counted against OUTBOX_MAX_BYTES. */
  bytes: number
  acceptedAt: number
}

/** A waiting event the relay took, with its place in the outbox. */
export interface Spooled extends SpoolRow {
  seq: number
  attempts: number
}

export interface DeadLetter {
  id: number
  destination: string
  tenant: string
  eventId: string
  type: string
  reason: string
  attempts: number
  acceptedAt: number
  failedAt: number
  /** The envelope the destination refused or never took, as JSON text. */
  envelope: string
}

export interface DestinationStats {
  destination: string
  depth: number
  bytes: number
  /** Milliseconds since the epoch; absent when nothing waits. */
  oldestAcceptedAt?: number
  deadLetters: number
  deadBytes: number
}

/**
 * Tenants an admin key is scoped to, as its patterns name them: these exactly, and those starting
 * with one of the prefixes. Absent: every tenant.
 */
export interface TenantScope {
  exact: string[]
  prefixes: string[]
}

/** Which dead letters an admin call is about: a destination's, some ids, or all (of the tenants, when scoped). */
export interface DeadLetterQuery {
  destination?: string
  ids?: number[]
  tenants?: TenantScope
}

/** What both outbox stores (embedded SQLite, PostgreSQL) do. */
export interface OutboxStore {
  readonly kind: 'sqlite' | 'postgres'
  connect (destinations: readonly string[]): Promise<void>
  /** Durable (fsync'd) when it resolves; concurrent appends share one commit. */
  append (rows: readonly SpoolRow[]): Promise<void>
  /** Events and bytes held (waiting and dead), as last known: what OUTBOX_MAX_* are checked against. */
  totals (): { events: number, bytes: number }
  /**
   * The buckets this replica may relay for a destination now, renewed for another lease; undefined:
   * all of them (one process owns the store).
   */
  claim (destination: string, owner: string): Promise<number[] | undefined>
  /** Gives buckets back that had nothing waiting. */
  release (destination: string, owner: string, buckets: readonly number[]): Promise<void>
  /** The oldest waiting events of a destination (in those buckets) not deferred past now, in accept order. */
  next (destination: string, buckets: readonly number[] | undefined, limit: number): Promise<Spooled[]>
  /** Published: gone from the outbox. */
  remove (events: readonly Spooled[]): Promise<void>
  /**
   * A failed attempt the broker answered (a nack): counted, and the events moved behind every
   * event waiting now, in their order, not taken by `next` before `retryAt` (ms since the epoch),
   * so that one the broker keeps refusing waits on its own instead of in front of later ones.
   * The Spooled objects given are stale afterwards (new seqs).
   */
  defer (events: readonly Spooled[], retryAt: number): Promise<void>
  /** Moved to the dead letters, with why. */
  bury (events: readonly Spooled[], reason: string): Promise<void>
  /**
   * Each destination's counts. PostgreSQL: as its 1-second refresher last read them, so that
   * readiness probes, scrapes and the admin API cost nothing however large the backlog
   * (`fresh`: counted now, for tests and tools); SQLite keeps them exactly, always.
   */
  stats (options?: { fresh?: boolean }): Promise<DestinationStats[]>
  deadLetters (query: { destination?: string, after?: number, limit: number, tenants?: TenantScope }): Promise<DeadLetter[]>
  /** Back into the outbox, at its end, with no attempts counted; resolves with how many. */
  replay (query: DeadLetterQuery): Promise<number>
  purge (query: DeadLetterQuery): Promise<number>
  /**
   * Deletes the events waiting (not dead) for a destination (of those tenants, when scoped);
   * resolves with how many. Only for a destination nothing appends to or relays any more.
   */
  purgeWaiting (destination: string, tenants?: TenantScope): Promise<number>
  /** Why appends fail now; undefined while they work. */
  down (): string | undefined
  close (): Promise<void>
}

export function toRow (destination: string, out: OutgoingEvent, now: number): SpoolRow {
  const { data: _data, ...event } = out.event
  // The message fields the destination declared are rendered from the data, which is not kept:
  // they are kept as rendered, beside the event's ids and context (rows of earlier versions have none).
  const meta = out.message === undefined ? event : { ...event, [MESSAGE]: out.message }
  return {
    destination,
    bucket: bucketOf(out.event.tenantId),
    tenant: out.event.tenantId,
    eventId: out.event.id,
    type: out.event.type,
    meta: JSON.stringify(meta),
    body: out.body,
    contentType: out.contentType,
    traceparent: out.traceparent ?? null,
    bytes: Buffer.byteLength(out.body),
    acceptedAt: now
  }
}

/** The message again, as it was when accepted (same id, envelope and trace context). */
export function toOutgoing (row: Spooled): OutgoingEvent {
  // Broker adapters read ids, context and keys; the data is in the body. The meta is what toRow wrote.
  const { [MESSAGE]: message, ...meta } = JSON.parse(row.meta) as Omit<GatewayEvent, 'data'> & { [MESSAGE]?: WireMessage }
  const event = { ...meta, data: {} }
  return {
    event,
    body: row.body,
    contentType: row.contentType,
    ...(row.traceparent === null ? {} : { traceparent: row.traceparent }),
    ...(message === undefined ? {} : { message })
  }
}

/** The key of a row's meta that holds the rendered message fields (not a field of the event). */
const MESSAGE = '$message'
