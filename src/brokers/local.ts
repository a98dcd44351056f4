import type Database from 'better-sqlite3'
import { messageOf } from '../errors.js'
import type { Db } from '../storage/database.js'
import { SqliteWriter, WriteError } from '../storage/sqlite-writer.js'
import {
  BrokerError,
  type Broker,
  type BrokerHealth,
  type EventReader,
  type OutgoingEvent,
  type PublishOutcome,
  type ReadPage,
  type ReadQuery
} from './broker.js'

// SQLite errors that a later attempt may not meet again.
const TRANSIENT = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_PROTOCOL']

interface StoredRow { seq: number, envelope: string }

/**
 * The embedded broker: events are stored in SQLite and can be read back per tenant. Writes go to
 * a worker thread that commits (with fsync) off the event loop; publishes that arrive in the same
 * tick travel as one batch, and batches that arrive during a commit share the next one.
 */
export class LocalBroker implements Broker, EventReader {
  readonly name = 'local'
  readonly #db: Db
  readonly #writer: SqliteWriter
  readonly #readAll: Database.Statement<[tenant: string, after: number, limit: number], StoredRow>
  readonly #readType: Database.Statement<[tenant: string, type: string, after: number, limit: number], StoredRow>
  readonly #readTypes = new Map<number, Database.Statement<unknown[], StoredRow>>()

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
    this.#writer = new SqliteWriter(db.name, {
      insert: 'INSERT OR IGNORE INTO events (id, tenant, type, routing_key, stored_at, envelope) VALUES (?, ?, ?, ?, ?, ?)'
    })
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
      // The writer rejects with WriteError only; anything else is a bug, not the store's state.
      if (!(err instanceof WriteError)) throw err
      const { code } = err
      const closed = this.#writer.down === 'closed'
      const error = code === 'WRITER_DOWN'
        ? new BrokerError(closed ? 'local store is closed' : `local store: ${err.message}`, {
          retryable: true,
          reason: closed ? 'closed' : 'writer_failed',
          down: true
        })
        : new BrokerError(`local store write failed: ${code}`, {
          retryable: TRANSIENT.some(c => code.startsWith(c)),
          reason: code.toLowerCase()
        })
      return events.map(() => ({ ok: false, error }))
    }
  }

  read (query: ReadQuery): ReadPage {
    const after = query.after ?? 0
    let rows: StoredRow[]
    if (query.type !== undefined) rows = this.#readType.all(query.tenantId, query.type, after, query.limit)
    else if (query.types === undefined) rows = this.#readAll.all(query.tenantId, after, query.limit)
    else if (query.types.length === 0) rows = []
    else rows = this.#typesStatement(query.types.length).all([query.tenantId, ...query.types, after, query.limit])
    return { events: rows.map(r => r.envelope), next: rows.at(-1)?.seq ?? after }
  }

  /** One statement per list length (at most the catalog's size). */
  #typesStatement (count: number): Database.Statement<unknown[], StoredRow> {
    let statement = this.#readTypes.get(count)
    if (statement === undefined) {
      const types = new Array(count).fill('?').join(', ')
      const sql = `SELECT seq, envelope FROM events WHERE tenant = ? AND type IN (${types}) AND seq > ? ORDER BY seq LIMIT ?`
      statement = this.#db.prepare<unknown[], StoredRow>(sql)
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
      return { up: false, detail: messageOf(err) }
    }
  }

  async close (): Promise<void> {
    await this.#writer.close()
  }
}
