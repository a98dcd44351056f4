import { createHash } from 'node:crypto'
import type { Db } from './database.js'
import { GatewayError } from './errors.js'
import type { GatewayEvent } from './event.js'

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000
const KEY = /^[\x21-\x7e]{1,255}$/

export interface StoredAnswer {
  status: number
  body: unknown
}

/** What a key holds: the first answer, or an event some of its destinations still lack. */
export type Kept =
  | { state: 'done', answer: StoredAnswer }
  | { state: 'partial', event: GatewayEvent, delivered: string[] }

/** Kept rows with this status hold a partly delivered event, not an answer. */
const PARTIAL = 0

export function fingerprint (type: string, data: unknown): string {
  return createHash('sha256').update(type).update('\0').update(JSON.stringify(data)).digest('hex')
}

export function checkIdempotencyKey (key: string): void {
  if (!KEY.test(key)) throw new GatewayError('EVG_BAD_CONTEXT', 'Idempotency-Key must be 1 to 255 visible ASCII characters')
}

/**
 * First answers per (tenant, key), kept for 24 hours in the embedded database. A repeat with the
 * same request gets the first answer and publishes nothing; a different request gets 409. Only
 * successful answers are kept, so a request that failed can be sent again with its key; when
 * some destinations got the event, the event is kept so that a repeat completes the others.
 */
export class IdempotencyStore {
  readonly #get
  readonly #put
  readonly #purge
  readonly #inflight = new Map<string, Promise<void>>()
  readonly #timer: NodeJS.Timeout

  constructor (db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS idempotency (
      tenant TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
      status INTEGER NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
      PRIMARY KEY (tenant, key)) WITHOUT ROWID`)
    this.#get = db.prepare('SELECT fingerprint, status, body FROM idempotency WHERE tenant = ? AND key = ? AND created_at > ?')
    this.#put = db.prepare('INSERT OR REPLACE INTO idempotency (tenant, key, fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)')
    this.#purge = db.prepare('DELETE FROM idempotency WHERE created_at <= ?')
    this.#timer = setInterval(() => this.purgeExpired(), 60 * 60 * 1000).unref()
  }

  purgeExpired (now = Date.now()): number {
    return this.#purge.run(now - IDEMPOTENCY_TTL_MS).changes
  }

  /** What the key holds; EVG_IDEMPOTENCY_CONFLICT when the key was used for another request. */
  lookup (tenant: string, key: string, print: string): Kept | undefined {
    const row = this.#get.get(tenant, key, Date.now() - IDEMPOTENCY_TTL_MS) as { fingerprint: string, status: number, body: string } | undefined
    if (row === undefined) return undefined
    if (row.fingerprint !== print) throw conflict()
    const body = JSON.parse(row.body)
    return row.status === PARTIAL ? { state: 'partial', ...(body as { event: GatewayEvent, delivered: string[] }) } : { state: 'done', answer: { status: row.status, body } }
  }

  remember (tenant: string, key: string, print: string, answer: StoredAnswer): void {
    this.#put.run(tenant, key, print, answer.status, JSON.stringify(answer.body), Date.now())
  }

  /** Keeps an event that reached only `delivered`, so that a repeat sends it to the others. */
  rememberPartial (tenant: string, key: string, print: string, event: GatewayEvent, delivered: readonly string[]): void {
    this.#put.run(tenant, key, print, PARTIAL, JSON.stringify({ event, delivered }), Date.now())
  }

  /** Resolves when the request now publishing under this key is done; undefined when none is. */
  pending (tenant: string, key: string): Promise<void> | undefined {
    return this.#inflight.get(`${tenant}\0${key}`)
  }

  /**
   * Marks the key as being published by this process until the returned function is called.
   * The caller has checked that no one holds it (`pending`) in the same synchronous step.
   */
  claim (tenant: string, key: string): () => void {
    const id = `${tenant}\0${key}`
    if (this.#inflight.has(id)) throw new Error(`idempotency key claimed twice: ${key}`)
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    this.#inflight.set(id, held)
    return () => {
      if (this.#inflight.get(id) === held) this.#inflight.delete(id)
      release()
    }
  }

  close (): void {
    clearInterval(this.#timer)
  }
}

export function conflict (detail = 'this Idempotency-Key was already used with a different request'): GatewayError {
  return new GatewayError('EVG_IDEMPOTENCY_CONFLICT', detail)
}
