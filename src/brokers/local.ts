import type { Db } from '../database.js'
import { BrokerError, type Broker, type BrokerHealth, type EventReader, type OutgoingEvent, type PublishOutcome, type ReadPage, type ReadQuery } from './broker.js'

interface Pending {
  events: readonly OutgoingEvent[]
  resolve: (outcomes: PublishOutcome[]) => void
}

// SQLite errors that a later attempt may not meet again.
const TRANSIENT = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_PROTOCOL'])

/**
 * The embedded broker: events are stored in SQLite and can be read back per tenant. Publishes
 * that arrive in the same tick are committed in one transaction, so they share one fsync.
 */
export class LocalBroker implements Broker, EventReader {
  readonly name = 'local'
  readonly #db: Db
  #queue: Pending[] = []
  #scheduled = false
  #closed = false
  readonly #insert
  readonly #commit

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
    // OR IGNORE: a retry of an event that was in fact stored must not fail or duplicate it.
    this.#insert = db.prepare('INSERT OR IGNORE INTO events (id, tenant, type, routing_key, stored_at, envelope) VALUES (?, ?, ?, ?, ?, ?)')
    this.#commit = db.transaction((batch: Pending[]) => {
      const now = Date.now()
      for (const p of batch) {
        for (const e of p.events) this.#insert.run(e.envelope.id, e.envelope.tenantid, e.envelope.type, e.routingKey, now, e.body)
      }
    })
  }

  async connect (): Promise<void> {}

  publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    if (this.#closed) return Promise.resolve(events.map(() => ({ ok: false as const, error: new BrokerError('local store is closed', { retryable: true, reason: 'closed' }) })))
    return new Promise(resolve => {
      this.#queue.push({ events, resolve })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush (): void {
    this.#scheduled = false
    const batch = this.#queue
    this.#queue = []
    let error: BrokerError | undefined
    try {
      this.#commit(batch)
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      const retryable = TRANSIENT.has(code) || [...TRANSIENT].some(c => code.startsWith(c))
      error = new BrokerError(`local store write failed: ${code || (err as Error).message}`, { retryable, reason: code.toLowerCase() || 'write_failed', cause: err })
    }
    for (const p of batch) {
      p.resolve(p.events.map(() => error === undefined ? { ok: true as const } : { ok: false as const, error }))
    }
  }

  read (query: ReadQuery): ReadPage {
    const after = query.after ?? 0
    const rows = (query.type === undefined
      ? this.#db.prepare('SELECT seq, envelope FROM events WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?').all(query.tenantId, after, query.limit)
      : this.#db.prepare('SELECT seq, envelope FROM events WHERE tenant = ? AND type = ? AND seq > ? ORDER BY seq LIMIT ?').all(query.tenantId, query.type, after, query.limit)) as { seq: number, envelope: string }[]
    return { events: rows.map(r => r.envelope), next: rows.at(-1)?.seq ?? after }
  }

  async health (): Promise<BrokerHealth> {
    if (this.#closed) return { up: false, detail: 'closed' }
    try {
      this.#db.prepare('SELECT 1').get()
      return { up: true }
    } catch (err) {
      return { up: false, detail: (err as Error).message }
    }
  }

  async close (): Promise<void> {
    if (this.#queue.length > 0) this.#flush()
    this.#closed = true
  }
}
