import Database from 'better-sqlite3'
import { codeOf, messageOf } from '../errors.js'
import type { Db } from '../storage/database.js'
import {
  IDEMPOTENCY_TTL_MS,
  StateUnavailableError,
  type IdempotencyStore,
  type KeyRef,
  type PartialDelivery,
  type Reservation,
  type StoredAnswer
} from './idempotency.js'
import { SqliteWriter, type Statement } from '../storage/sqlite-writer.js'
import { KeyFilter, keyHash } from './key-filter.js'

/** Kept rows with this status hold a partly delivered event, not an answer. */
const PARTIAL = 0

/** A key this process holds, or a record written but not yet committed. */
type Live =
  | { state: 'pending', print: string, hash: number, token: string, until: number, partial?: PartialDelivery }
  | { state: 'done', print: string, answer: StoredAnswer, at?: number }
  | { state: 'partial', print: string, partial: PartialDelivery, at?: number }

/** A record that replaces a reservation. */
type Settled = Exclude<Live, { state: 'pending' }>

const idOf = (ref: KeyRef) => `${ref.tenant}\0${ref.key}`

/** A kept row, as a look-up reads it. */
interface KeptRow { fingerprint: string, status: number, body: string }

/**
 * Keys kept by earlier versions are in table `idempotency` (keyed by tenant and key): it is read,
 * never written, and purged like the other, until its keys have expired; the first start after
 * that drops it. Nothing is copied, so an upgrade starts as fast as any start.
 */
function hasLegacy (db: Db, cutOff: number): boolean {
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idempotency'").get() === undefined) return false
  if (db.prepare('SELECT 1 FROM idempotency WHERE created_at > ? LIMIT 1').get(cutOff) !== undefined) return true
  db.exec('DROP TABLE idempotency')
  return false
}

/**
 * The filter of the keys kept now, read from the created_at indexes (about a second per million
 * keys), through a connection of its own: the main one maps the file, and reading a whole index
 * through the map would count much of the file in this process's memory.
 */
function fill (path: string, legacy: boolean, cutOff: number): KeyFilter {
  const filter = new KeyFilter()
  const db = new Database(path, { readonly: true, fileMustExist: true })
  try {
    const hashes = db.prepare<[number], number>('SELECT hash FROM idempotency_keys WHERE created_at > ?').pluck()
    for (const hash of hashes.iterate(cutOff)) filter.add(hash)
    if (legacy) {
      const keys = db.prepare<[number], [tenant: string, key: string]>('SELECT tenant, key FROM idempotency WHERE created_at > ?').raw()
      for (const [tenant, key] of keys.iterate(cutOff)) filter.add(keyHash(tenant, key))
    }
  } finally {
    db.close()
  }
  return filter
}

/**
 * Idempotency keys in the embedded database (DATA_DIR/gateway.db), for one gateway process.
 * Reservations live in this process's memory, so reserving is atomic without a write; answers
 * are written by the writer thread, grouped, and stay in memory until they are committed, so a
 * repeat never misses one. Commits are not fsynced (synchronous = NORMAL): a key survives the
 * process being killed, not the machine losing power, as with Redis's default persistence; the
 * events themselves are fsynced by their destination. Rows older than 24 hours are purged
 * hourly, through an index. A new key (the usual case) is known to be new without reading the
 * database: KeyFilter holds every key kept, filled from the table at start.
 */
export class SqliteIdempotencyStore implements IdempotencyStore {
  readonly #live = new Map<string, Live>()
  readonly #get: Database.Statement<[hash: number, tenant: string, key: string, cutOff: number], KeptRow>
  readonly #getLegacy: Database.Statement<[tenant: string, key: string, cutOff: number], KeptRow> | undefined
  readonly #legacy: boolean
  readonly #filter: KeyFilter
  readonly #writer: SqliteWriter
  readonly #timer: NodeJS.Timeout
  #nextToken: number

  constructor (db: Db) {
    // Rows are appended (rowid order), found through a small index of 53-bit key hashes; tenant
    // and key are compared too, so hashes may collide. A key written again (its partly delivered
    // event, then its answer) replaces its row.
    db.exec(`CREATE TABLE IF NOT EXISTS idempotency_keys (
      id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, tenant TEXT NOT NULL, key TEXT NOT NULL,
      fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS idempotency_keys_hash ON idempotency_keys (hash);
      CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at, hash)`)
    const cutOff = Date.now() - IDEMPOTENCY_TTL_MS
    const legacy = hasLegacy(db, cutOff)
    this.#get = db.prepare(`SELECT fingerprint, status, body FROM idempotency_keys
      WHERE hash = ? AND tenant = ? AND key = ? AND created_at > ? ORDER BY id DESC LIMIT 1`)
    this.#getLegacy = legacy
      ? db.prepare('SELECT fingerprint, status, body FROM idempotency WHERE tenant = ? AND key = ? AND created_at > ?')
      : undefined
    this.#filter = fill(db.name, legacy, cutOff)
    this.#writer = new SqliteWriter(db.name, {
      put: 'INSERT INTO idempotency_keys (hash, tenant, key, fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      drop: 'DELETE FROM idempotency_keys WHERE hash = ? AND tenant = ? AND key = ?',
      purge: 'DELETE FROM idempotency_keys WHERE created_at <= ?',
      ...(legacy ? { purgeLegacy: 'DELETE FROM idempotency WHERE created_at <= ?' } : {})
    }, { synchronous: 'NORMAL', gatherMs: 10 })
    this.#legacy = legacy
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
    const cutOff = now - IDEMPOTENCY_TTL_MS
    // Records that could not be written are kept in memory as long as a written one would be.
    for (const [id, record] of this.#live) {
      if (record.state !== 'pending' && record.at !== undefined && record.at <= cutOff) this.#live.delete(id)
    }
    return this.#writer.write(this.#legacy ? [['purge', cutOff], ['purgeLegacy', cutOff]] : [['purge', cutOff]])
  }

  async reserve (ref: KeyRef, leaseMs: number): Promise<Reservation> {
    const id = idOf(ref)
    const now = Date.now()
    // Without its writer the store cannot keep an answer: refuse, as Redis does when it is down.
    const down = this.#writer.down
    if (down !== undefined) throw new StateUnavailableError(`the idempotency store cannot write: ${down}`)
    const hash = keyHash(ref.tenant, ref.key)
    const held = this.#live.get(id) ?? (this.#filter.mayHave(hash, now) ? this.#stored(ref, hash, now) : undefined)
    if (held !== undefined && held.print !== ref.print) return { state: 'conflict' }
    if (held?.state === 'pending' && held.until > now) return { state: 'busy', retryInMs: held.until - now }
    if (held?.state === 'done') return { state: 'done', answer: held.answer }
    const token = String(++this.#nextToken)
    const partial = held?.partial
    this.#live.set(id, {
      state: 'pending',
      print: ref.print,
      hash,
      token,
      until: now + leaseMs,
      ...(partial === undefined ? {} : { partial })
    })
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
  async #settle (ref: KeyRef, token: string, record: Settled, status: number, body: unknown): Promise<void> {
    const id = idOf(ref)
    const held = this.#live.get(id)
    if (held?.state !== 'pending' || held.token !== token) return
    this.#live.set(id, record)
    // In the filter before the record leaves memory: a look-up never misses a written key.
    this.#filter.add(held.hash)
    const put: Statement = ['put', held.hash, ref.tenant, ref.key, ref.print, status, JSON.stringify(body), Date.now()]
    try {
      // A key that had a partly delivered event has a row already: this one replaces it.
      await this.#writer.write(held.partial === undefined ? [put] : [['drop', held.hash, ref.tenant, ref.key], put])
    } catch (err) {
      if (this.#live.get(id) === record) this.#live.set(id, { ...record, at: Date.now() })
      throw err
    }
    if (this.#live.get(id) === record) this.#live.delete(id)
  }

  #stored (ref: KeyRef, hash: number, now: number): Live | undefined {
    let row
    try {
      const cutOff = now - IDEMPOTENCY_TTL_MS
      row = this.#get.get(hash, ref.tenant, ref.key, cutOff) ?? this.#getLegacy?.get(ref.tenant, ref.key, cutOff)
    } catch (err) {
      throw new StateUnavailableError(`the idempotency table cannot be read: ${codeOf(err) ?? messageOf(err)}`, { cause: err })
    }
    if (row === undefined) return undefined
    const body: unknown = JSON.parse(row.body)
    // A partial row's body is the partly delivered event #settle wrote.
    return row.status === PARTIAL
      ? { state: 'partial', print: row.fingerprint, partial: body as PartialDelivery }
      : { state: 'done', print: row.fingerprint, answer: { status: row.status, body } }
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    await this.#writer.close()
  }
}
