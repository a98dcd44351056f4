import type Database from 'better-sqlite3'
import { codeOf, messageOf } from '../errors.js'
import { openDatabase, type Db } from '../storage/database.js'
import { SqliteWriter, type Statement } from '../storage/sqlite-writer.js'
import {
  ROW_COLUMNS as COLUMNS,
  rowColumnsDdl,
  type DeadLetter,
  type DeadLetterQuery,
  type DestinationStats,
  type TenantScope,
  type OutboxStore,
  type SpoolRow,
  type Spooled
} from './outbox.js'

// A dead-letter query: one destination's or all, some ids (a JSON array) or all; up to an id
// (dead letters buried since the query was counted have larger ones).
// Tenants: every one (@exact NULL), or these (JSON arrays) exactly and those starting with a prefix.
const WHERE_TENANT = '(@exact IS NULL OR tenant IN (SELECT value FROM json_each(@exact)) ' +
  'OR EXISTS (SELECT 1 FROM json_each(@prefixes) p WHERE substr(tenant, 1, length(p.value)) = p.value))'
const WHERE_DEAD = '(@destination IS NULL OR destination = @destination) AND (@ids IS NULL OR id IN (SELECT value FROM json_each(@ids))) ' +
  `AND id <= @upto AND ${WHERE_TENANT}`
const WHERE_WAITING = `destination = @destination AND seq <= @upto AND ${WHERE_TENANT}`
const SEQS = 'seq IN (SELECT value FROM json_each(?))'

/** How long a failed append keeps the outbox reported down. */
const FAILING_MS = 5000

interface Counts { depth: number, bytes: number, deadLetters: number, deadBytes: number }

/** A destination's rows and their bytes, in one table. */
interface TableCount { destination: string, n: number, bytes: number }

/** What a dead-letter query names, as deadParams gives it. */
interface DeadParams extends TenantParams { destination: string | null, ids: string | null, upto: number }

/** A TenantScope as the queries take it: JSON arrays, or nulls for every tenant. */
interface TenantParams { exact: string | null, prefixes: string | null }

/**
 * The embedded outbox: DATA_DIR/outbox.db, its own file so that its commits never wait for the
 * local broker's or the idempotency keys'. Writes go through a writer thread with FULL sync (an
 * append is on disk before the event is answered; appends of one tick share the commit); reads
 * (the relay's next batch, dead letters) use this thread's connection. One process owns the file,
 * so the counts OUTBOX_MAX_* are checked against are kept here, exactly.
 */
export class SqliteOutbox implements OutboxStore {
  readonly kind = 'sqlite'
  readonly #db: Db
  readonly #writer: SqliteWriter
  readonly #counts = new Map<string, Counts>()
  #pending = { events: 0, bytes: 0 }
  /** Why the last append failed, and when; cleared when one works. */
  #failing: { why: string, at: number } | undefined
  /** Replays and purges, one at a time. */
  #settling: Promise<unknown> = Promise.resolve()
  readonly #next: Database.Statement<[destination: string, now: number, limit: number], Spooled>
  readonly #oldest: Database.Statement<[destination: string], number>

  constructor (dataDir: string) {
    this.#db = openDatabase(dataDir, 'outbox.db')
    const columns = rowColumnsDdl({ int: 'INTEGER', bigint: 'INTEGER' })
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY,
        ${columns},
        attempts INTEGER NOT NULL DEFAULT 0,
        retry_at INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS outbox_destination_seq ON outbox (destination, seq);
      CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ${columns},
        attempts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        failed_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS dead_letters_destination_id ON dead_letters (destination, id);
    `)
    // An outbox of an earlier version: the column a deferred event waits by (0: no wait).
    const columnsNow = this.#db.prepare<[], { name: string }>('PRAGMA table_info(outbox)').all()
    if (!columnsNow.some(c => c.name === 'retry_at')) this.#db.exec('ALTER TABLE outbox ADD COLUMN retry_at INTEGER NOT NULL DEFAULT 0')
    this.#writer = new SqliteWriter(this.#db.name, {
      append: `INSERT INTO outbox (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      remove: `DELETE FROM outbox WHERE ${SEQS}`,
      // Rowids only grow past the largest one waiting: the copies go after everything there.
      defer: `INSERT INTO outbox (${COLUMNS}, attempts, retry_at)
        SELECT ${COLUMNS}, attempts + 1, ? FROM outbox WHERE ${SEQS} ORDER BY seq`,
      bury: `INSERT INTO dead_letters (${COLUMNS}, attempts, reason, failed_at)
        SELECT ${COLUMNS}, attempts, ?, ? FROM outbox WHERE ${SEQS} ORDER BY accepted_at, seq`,
      replay: `INSERT INTO outbox (${COLUMNS}) SELECT ${COLUMNS} FROM dead_letters WHERE ${WHERE_DEAD} ORDER BY id`,
      forget: `DELETE FROM dead_letters WHERE ${WHERE_DEAD}`,
      drop: `DELETE FROM outbox WHERE ${WHERE_WAITING}`
    })
    this.#next = this.#db.prepare(`SELECT seq, destination, bucket, tenant, event_id AS eventId, type, meta, body,
        content_type AS contentType, traceparent, bytes, accepted_at AS acceptedAt, attempts
      FROM outbox WHERE destination = ? AND retry_at <= ? ORDER BY seq LIMIT ?`)
    this.#oldest = this.#db
      .prepare<[string], number>('SELECT accepted_at AS at FROM outbox WHERE destination = ? ORDER BY seq LIMIT 1')
      .pluck()
  }

  async connect (): Promise<void> {
    await this.#writer.connect()
    this.#recount()
  }

  #recount (): void {
    this.#counts.clear()
    const count = (table: string) => this.#db
      .prepare<[], TableCount>(`SELECT destination, count(*) AS n, coalesce(sum(bytes), 0) AS bytes FROM ${table} GROUP BY destination`)
      .all()
    const waiting = count('outbox')
    const dead = count('dead_letters')
    for (const w of waiting) this.#count(w.destination, { depth: w.n, bytes: w.bytes })
    for (const d of dead) this.#count(d.destination, { deadLetters: d.n, deadBytes: d.bytes })
  }

  #count (destination: string, change: Partial<Counts>): void {
    let counts = this.#counts.get(destination)
    if (counts === undefined) this.#counts.set(destination, counts = { depth: 0, bytes: 0, deadLetters: 0, deadBytes: 0 })
    counts.depth += change.depth ?? 0
    counts.bytes += change.bytes ?? 0
    counts.deadLetters += change.deadLetters ?? 0
    counts.deadBytes += change.deadBytes ?? 0
  }

  async append (rows: readonly SpoolRow[]): Promise<void> {
    const bytes = rows.reduce((sum, r) => sum + r.bytes, 0)
    this.#pending.events += rows.length
    this.#pending.bytes += bytes
    try {
      await this.#write(rows.map(r => [
        'append', r.destination, r.bucket, r.tenant, r.eventId, r.type, r.meta, r.body, r.contentType, r.traceparent, r.bytes, r.acceptedAt
      ]))
      for (const r of rows) this.#count(r.destination, { depth: 1, bytes: r.bytes })
    } finally {
      this.#pending.events -= rows.length
      this.#pending.bytes -= bytes
    }
  }

  /** A write that fails (a full disk, a read-only DATA_DIR) marks the outbox down for a while. */
  async #write (statements: Statement[]): Promise<number> {
    try {
      const changes = await this.#writer.write(statements)
      this.#failing = undefined
      return changes
    } catch (err) {
      this.#failing = { why: `the outbox cannot be written: ${codeOf(err) ?? messageOf(err)}`, at: Date.now() }
      throw err
    }
  }

  totals (): { events: number, bytes: number } {
    let events = this.#pending.events
    let bytes = this.#pending.bytes
    for (const c of this.#counts.values()) {
      events += c.depth + c.deadLetters
      bytes += c.bytes + c.deadBytes
    }
    return { events, bytes }
  }

  async claim (): Promise<undefined> {
    return undefined
  }

  async release (): Promise<void> {}

  async next (destination: string, _buckets: readonly number[] | undefined, limit: number): Promise<Spooled[]> {
    return this.#next.all(destination, Date.now(), limit)
  }

  async remove (events: readonly Spooled[]): Promise<void> {
    if (events.length === 0) return
    await this.#write([['remove', JSON.stringify(events.map(e => e.seq))]])
    for (const e of events) this.#count(e.destination, { depth: -1, bytes: -e.bytes })
  }

  async defer (events: readonly Spooled[], retryAt: number): Promise<void> {
    if (events.length === 0) return
    const seqs = JSON.stringify(events.map(e => e.seq))
    await this.#write([['defer', retryAt, seqs], ['remove', seqs]])
  }

  async bury (events: readonly Spooled[], reason: string): Promise<void> {
    if (events.length === 0) return
    const seqs = JSON.stringify(events.map(e => e.seq))
    await this.#write([['bury', reason, Date.now(), seqs], ['remove', seqs]])
    for (const e of events) this.#count(e.destination, { depth: -1, bytes: -e.bytes, deadLetters: 1, deadBytes: e.bytes })
  }

  async stats (): Promise<DestinationStats[]> {
    return [...this.#counts].map(([destination, c]) => {
      const oldest = c.depth > 0 ? this.#oldest.get(destination) : undefined
      return { destination, ...c, ...(oldest === undefined ? {} : { oldestAcceptedAt: oldest }) }
    })
  }

  async deadLetters (query: { destination?: string, after?: number, limit: number, tenants?: TenantScope }): Promise<DeadLetter[]> {
    return this.#db.prepare<TenantParams & { destination: string | null, after: number, limit: number }, DeadLetter>(`SELECT id,
        destination, tenant, event_id AS eventId, type, reason, attempts, accepted_at AS acceptedAt, failed_at AS failedAt,
        body AS envelope
      FROM dead_letters WHERE (@destination IS NULL OR destination = @destination) AND id > @after AND ${WHERE_TENANT}
      ORDER BY id LIMIT @limit`)
      .all({ destination: query.destination ?? null, after: query.after ?? 0, limit: query.limit, ...tenantParams(query.tenants) })
  }

  async replay (query: DeadLetterQuery): Promise<number> {
    return await this.#settle(query, true)
  }

  async purge (query: DeadLetterQuery): Promise<number> {
    return await this.#settle(query, false)
  }

  /**
   * Counts the dead letters first and changes the counts by exactly those, never by counting
   * the tables again afterwards: appends, removes and burials committed meanwhile change the
   * counts themselves, when they resolve, and a count taken in between would have them twice
   * (or never).
   */
  async #settle (query: DeadLetterQuery, replay: boolean): Promise<number> {
    const run = this.#settling.then(async () => {
      const found = this.#db
        .prepare<DeadParams, TableCount & { upto: number }>(`SELECT destination, count(*) AS n, sum(bytes) AS bytes, max(id) AS upto
          FROM dead_letters WHERE ${WHERE_DEAD} GROUP BY destination`)
        .all(deadParams(query, Number.MAX_SAFE_INTEGER))
      if (found.length === 0) return 0
      const params = deadParams(query, Math.max(...found.map(f => f.upto)))
      await this.#write(replay ? [['replay', params], ['forget', params]] : [['forget', params]])
      for (const f of found) {
        this.#count(f.destination, { deadLetters: -f.n, deadBytes: -f.bytes, ...(replay ? { depth: f.n, bytes: f.bytes } : {}) })
      }
      return found.reduce((sum, f) => sum + f.n, 0)
    })
    this.#settling = run.catch(() => undefined)
    return await run
  }

  /** Counted first, like #settle: nothing appends to the destination, so the count is what is deleted. */
  async purgeWaiting (destination: string, tenants?: TenantScope): Promise<number> {
    const run = this.#settling.then(async () => {
      const params = { destination, upto: Number.MAX_SAFE_INTEGER, ...tenantParams(tenants) }
      const found = this.#db
        .prepare<typeof params, { n: number, bytes: number | null, upto: number | null }>(`SELECT count(*) AS n, sum(bytes) AS bytes,
          max(seq) AS upto FROM outbox WHERE ${WHERE_WAITING}`)
        .get(params)
      if (found === undefined || found.n === 0 || found.upto === null) return 0
      await this.#write([['drop', { ...params, upto: found.upto }]])
      this.#count(destination, { depth: -found.n, bytes: -(found.bytes ?? 0) })
      return found.n
    })
    this.#settling = run.catch(() => undefined)
    return await run
  }

  down (): string | undefined {
    // A failed write marks it down for a few seconds, not until the next one works: a
    // readiness probe that took the gateway out of rotation would otherwise keep it out.
    return this.#writer.down ?? (this.#failing !== undefined && Date.now() - this.#failing.at < FAILING_MS ? this.#failing.why : undefined)
  }

  async close (): Promise<void> {
    await this.#writer.close()
    this.#db.close()
  }
}

function deadParams (query: DeadLetterQuery, upto: number): DeadParams {
  return {
    destination: query.destination ?? null,
    ids: query.ids === undefined ? null : JSON.stringify(query.ids),
    upto,
    ...tenantParams(query.tenants)
  }
}

function tenantParams (tenants: TenantScope | undefined): TenantParams {
  return tenants === undefined
    ? { exact: null, prefixes: null }
    : { exact: JSON.stringify(tenants.exact), prefixes: JSON.stringify(tenants.prefixes) }
}
