import { createHash } from 'node:crypto'
import type { Db } from './database.js'
import { GatewayError } from './errors.js'

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000
const KEY = /^[\x21-\x7e]{1,255}$/

export interface StoredAnswer {
  status: number
  body: unknown
}

export type IdempotentRun = { replayed: false, answer: StoredAnswer } | { replayed: true, answer: StoredAnswer }

export function fingerprint (type: string, data: unknown): string {
  return createHash('sha256').update(type).update('\0').update(JSON.stringify(data)).digest('hex')
}

export function checkIdempotencyKey (key: string): void {
  if (!KEY.test(key)) throw new GatewayError('EVG_BAD_CONTEXT', 'Idempotency-Key must be 1 to 255 visible ASCII characters')
}

/**
 * First answers per (tenant, key), kept for 24 hours in the embedded database. A repeat with the
 * same request gets the first answer and publishes nothing; a different request gets 409.
 * Only successful answers are kept, so a request that failed can be sent again with its key.
 */
export class IdempotencyStore {
  readonly #get
  readonly #put
  readonly #purge
  readonly #inflight = new Map<string, { fingerprint: string, done: Promise<StoredAnswer | undefined> }>()
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

  /** The kept answer for this key; EVG_IDEMPOTENCY_CONFLICT when the key was used for another request. */
  lookup (tenant: string, key: string, print: string): StoredAnswer | undefined {
    const row = this.#get.get(tenant, key, Date.now() - IDEMPOTENCY_TTL_MS) as { fingerprint: string, status: number, body: string } | undefined
    if (row === undefined) return undefined
    if (row.fingerprint !== print) throw conflict()
    return { status: row.status, body: JSON.parse(row.body) }
  }

  remember (tenant: string, key: string, print: string, answer: StoredAnswer): void {
    this.#put.run(tenant, key, print, answer.status, JSON.stringify(answer.body), Date.now())
  }

  /**
   * Runs `work` once per (tenant, key). `work` answers with the answer to keep, or undefined when
   * the attempt failed and must not be remembered.
   */
  async run (tenant: string, key: string, print: string, work: () => Promise<StoredAnswer | undefined>): Promise<IdempotentRun | { replayed: false, answer: undefined }> {
    const id = `${tenant}\0${key}`
    const running = this.#inflight.get(id)
    if (running !== undefined) {
      if (running.fingerprint !== print) throw conflict()
      const answer = await running.done
      if (answer !== undefined) return { replayed: true, answer }
    }
    const stored = this.lookup(tenant, key, print)
    if (stored !== undefined) return { replayed: true, answer: stored }
    const done = work()
    this.#inflight.set(id, { fingerprint: print, done: done.catch(() => undefined) })
    try {
      const answer = await done
      if (answer !== undefined) this.remember(tenant, key, print, answer)
      return { replayed: false, answer }
    } finally {
      this.#inflight.delete(id)
    }
  }

  close (): void {
    clearInterval(this.#timer)
  }
}

function conflict (): GatewayError {
  return new GatewayError('EVG_IDEMPOTENCY_CONFLICT', 'this Idempotency-Key was already used with a different request')
}
