import type { Db } from '../database.js'
import { IDEMPOTENCY_TTL_MS, StateUnavailableError, type IdempotencyStore, type KeyRef, type PartialDelivery, type Reservation, type StoredAnswer } from '../idempotency.js'
import { SqliteWriter } from '../sqlite-writer.js'

/** Kept rows with this status hold a partly delivered event, not an answer. */
const PARTIAL = 0

/** A key this process holds, or a record written but not yet committed. */
type Live =
  | { state: 'pending', print: string, token: string, until: number, partial?: PartialDelivery }
  | { state: 'done', print: string, answer: StoredAnswer, at?: number }
  | { state: 'partial', print: string, partial: PartialDelivery, at?: number }

const idOf = (ref: KeyRef) => `${ref.tenant}\0${ref.key}`

/**
 * Idempotency keys in the embedded database (DATA_DIR/gateway.db), for one gateway process.
 * Reservations live in this process's memory, so reserving is atomic without a write; answers
 * are written by the writer thread, grouped, and stay in memory until they are committed, so a
 * repeat never misses one. Commits are not fsynced (synchronous = NORMAL): a key survives the
 * process being killed, not the machine losing power, as with Redis's default persistence; the
 * events themselves are fsynced by their destination. Rows older than 24 hours are purged
 * hourly, through an index.
 */
export class SqliteIdempotencyStore implements IdempotencyStore {
  readonly #live = new Map<string, Live>()
  readonly #get
  readonly #writer: SqliteWriter
  readonly #timer: NodeJS.Timeout
  #nextToken: number

  constructor (db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS idempotency (
      tenant TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
      status INTEGER NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
      PRIMARY KEY (tenant, key)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS idempotency_created_at ON idempotency (created_at)`)
    this.#get = db.prepare('SELECT fingerprint, status, body FROM idempotency WHERE tenant = ? AND key = ? AND created_at > ?')
    this.#writer = new SqliteWriter(db.name, {
      put: 'INSERT OR REPLACE INTO idempotency (tenant, key, fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      purge: 'DELETE FROM idempotency WHERE created_at <= ?'
    }, { synchronous: 'NORMAL', gatherMs: 10 })
    this.#timer = setInterval(() => { this.purgeExpired().catch(() => undefined) }, 60 * 60 * 1000).unref()
    this.#nextToken = 0
  }

  async connect (): Promise<void> {
    await this.#writer.connect()
  }

  get down (): string | undefined {
    return this.#writer.down
  }

  /** Deletes what is older than 24 hours, off the event loop; resolves with the rows deleted. */
  purgeExpired (now = Date.now()): Promise<number> {
    // Records that could not be written are kept in memory as long as a written one would be.
    for (const [id, record] of this.#live) if (record.state !== 'pending' && record.at !== undefined && record.at <= now - IDEMPOTENCY_TTL_MS) this.#live.delete(id)
    return this.#writer.write([['purge', now - IDEMPOTENCY_TTL_MS]])
  }

  async reserve (ref: KeyRef, leaseMs: number): Promise<Reservation> {
    const id = idOf(ref)
    const now = Date.now()
    // Without its writer the store cannot keep an answer: refuse, as Redis does when it is down.
    const down = this.#writer.down
    if (down !== undefined) throw new StateUnavailableError(`the idempotency store cannot write: ${down}`)
    const held = this.#live.get(id) ?? this.#stored(ref, now)
    if (held !== undefined && held.print !== ref.print) return { state: 'conflict' }
    if (held?.state === 'pending' && held.until > now) return { state: 'busy', retryInMs: held.until - now }
    if (held?.state === 'done') return { state: 'done', answer: held.answer }
    const token = String(++this.#nextToken)
    const partial = held?.partial
    this.#live.set(id, { state: 'pending', print: ref.print, token, until: now + leaseMs, ...(partial === undefined ? {} : { partial }) })
    return { state: 'reserved', token, ...(partial === undefined ? {} : { partial }) }
  }

  async complete (ref: KeyRef, token: string, answer: StoredAnswer): Promise<void> {
    await this.#settle(ref, token, { state: 'done', print: ref.print, answer }, answer.status, answer.body)
  }

  async keepPartial (ref: KeyRef, token: string, partial: PartialDelivery): Promise<void> {
    await this.#settle(ref, token, { state: 'partial', print: ref.print, partial }, PARTIAL, partial)
  }

  async release (ref: KeyRef, token: string): Promise<void> {
    const id = idOf(ref)
    const held = this.#live.get(id)
    if (held?.state !== 'pending' || held.token !== token) return
    if (held.partial === undefined) this.#live.delete(id)
    else await this.#settle(ref, token, { state: 'partial', print: ref.print, partial: held.partial }, PARTIAL, held.partial)
  }

  /**
   * Replaces the holder's reservation with a record, in memory until it is committed. One that
   * cannot be written stays in memory (for 24 hours, like a written one): this process still
   * replays it; a restart would forget it. The error goes to the caller, which logs it.
   */
  async #settle (ref: KeyRef, token: string, record: Live, status: number, body: unknown): Promise<void> {
    const id = idOf(ref)
    const held = this.#live.get(id)
    if (held?.state !== 'pending' || held.token !== token) return
    this.#live.set(id, record)
    try {
      await this.#writer.write([['put', ref.tenant, ref.key, ref.print, status, JSON.stringify(body), Date.now()]])
    } catch (err) {
      if (this.#live.get(id) === record) this.#live.set(id, { ...record, at: Date.now() } as Live)
      throw err
    }
    if (this.#live.get(id) === record) this.#live.delete(id)
  }

  #stored (ref: KeyRef, now: number): Live | undefined {
    let row
    try {
      row = this.#get.get(ref.tenant, ref.key, now - IDEMPOTENCY_TTL_MS) as { fingerprint: string, status: number, body: string } | undefined
    } catch (err) {
      throw new StateUnavailableError(`the idempotency table cannot be read: ${(err as { code?: string }).code ?? (err as Error).message}`, { cause: err })
    }
    if (row === undefined) return undefined
    const body: unknown = JSON.parse(row.body)
    return row.status === PARTIAL
      ? { state: 'partial', print: row.fingerprint, partial: body as PartialDelivery }
      : { state: 'done', print: row.fingerprint, answer: { status: row.status, body } }
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    await this.#writer.close()
  }
}
