import type { Db } from '../storage/database.js'
import { SqliteWriter, type WriteError } from '../storage/sqlite-writer.js'
import { BrokerError, type Broker, type BrokerHealth, type EventReader, type OutgoingEvent, type PublishOutcome, type ReadPage, type ReadQuery } from './broker.js'

// SQLite errors that a later attempt may not meet again.
const TRANSIENT = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_PROTOCOL']

/**
 * The embedded broker: events are stored in SQLite and can be read back per tenant. Writes go to
 * a worker thread that commits (with fsync) off the event loop; publishes that arrive in the same
 * tick travel as one batch, and batches that arrive during a commit share the next one.
 */
export class LocalBroker implements Broker, EventReader {
  readonly name = 'local'
  readonly #db: Db
  readonly #writer: SqliteWriter
  readonly #readAll
  readonly #readType
  readonly #readTypes = new Map<number, ReturnType<Db['prepare']>>()

  constructor (db: Db) {
    this.#db = db
    db.exec(`
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        type TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        stored_at INTEGER NOT NULL,
        envelope TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS events_tenant_seq ON events (tenant, seq);
      CREATE INDEX IF NOT EXISTS events_tenant_type_seq ON events (tenant, type, seq);
    `)
    this.#readAll = db.prepare('SELECT seq, envelope FROM events WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?')
    this.#readType = db.prepare('SELECT seq, envelope FROM events WHERE tenant = ? AND type = ? AND seq > ? ORDER BY seq LIMIT ?')
    // OR IGNORE: a retry of an event that was in fact stored must not fail or duplicate it.
    this.#writer = new SqliteWriter(db.name, { insert: 'INSERT OR IGNORE INTO events (id, tenant, type, routing_key, stored_at, envelope) VALUES (?, ?, ?, ?, ?, ?)' })
  }

  /** Waits for the writer thread to have the database open, however slow the machine. */
  async connect (): Promise<void> {
    await this.#writer.connect()
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const now = Date.now()
    try {
      await this.#writer.write(events.map(({ event: e, body }) => ['insert', e.id, e.tenantId, e.type, e.routingKey, now, body]))
      return events.map(() => ({ ok: true }))
    } catch (err) {
      const { code } = err as WriteError
      const error = code === 'WRITER_DOWN'
        ? new BrokerError(this.#writer.down === 'closed' ? 'local store is closed' : `local store: ${(err as Error).message}`, { retryable: true, reason: this.#writer.down === 'closed' ? 'closed' : 'writer_failed', down: true })
        : new BrokerError(`local store write failed: ${code}`, { retryable: TRANSIENT.some(c => code.startsWith(c)), reason: code.toLowerCase() })
      return events.map(() => ({ ok: false, error }))
    }
  }

  read (query: ReadQuery): ReadPage {
    const after = query.after ?? 0
    let rows: { seq: number, envelope: string }[]
    if (query.type !== undefined) rows = this.#readType.all(query.tenantId, query.type, after, query.limit) as typeof rows
    else if (query.types === undefined) rows = this.#readAll.all(query.tenantId, after, query.limit) as typeof rows
    else if (query.types.length === 0) rows = []
    else rows = this.#typesStatement(query.types.length).all([query.tenantId, ...query.types, after, query.limit]) as typeof rows
    return { events: rows.map(r => r.envelope), next: rows.at(-1)?.seq ?? after }
  }

  /** One statement per list length (at most the catalog's size). */
  #typesStatement (count: number): ReturnType<Db['prepare']> {
    let statement = this.#readTypes.get(count)
    if (statement === undefined) {
      statement = this.#db.prepare(`SELECT seq, envelope FROM events WHERE tenant = ? AND type IN (${new Array(count).fill('?').join(', ')}) AND seq > ? ORDER BY seq LIMIT ?`)
      this.#readTypes.set(count, statement)
    }
    return statement
  }

  async health (): Promise<BrokerHealth> {
    const down = this.#writer.down
    if (down !== undefined) return { up: false, detail: down }
    try {
      this.#db.prepare('SELECT 1').get()
      return { up: true }
    } catch (err) {
      return { up: false, detail: (err as Error).message }
    }
  }

  async close (): Promise<void> {
    await this.#writer.close()
  }
}
