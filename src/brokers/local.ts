import { Worker } from 'node:worker_threads'
import type { Db } from '../database.js'
import { BrokerError, type Broker, type BrokerHealth, type EventReader, type OutgoingEvent, type PublishOutcome, type ReadPage, type ReadQuery } from './broker.js'

type Row = [id: string, tenant: string, type: string, routingKey: string, storedAt: number, envelope: string]
interface WriteRequest { id: number, rows: Row[] }
interface WriteResult { id: number, error?: { code: string, message: string } }

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
  readonly #worker: Worker
  readonly #waiting = new Map<number, { count: number, resolve: (outcomes: PublishOutcome[]) => void }>()
  #rows: Row[] = []
  #resolvers: { count: number, resolve: (outcomes: PublishOutcome[]) => void }[] = []
  #scheduled = false
  #nextId = 0
  #down: string | undefined
  #closed = false
  #drained: (() => void) | undefined
  #ready: Promise<void>
  readonly #readAll
  readonly #readType

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
    this.#worker = new Worker(new URL('./local-writer.cjs', import.meta.url), { workerData: { path: db.name } })
    this.#ready = new Promise((resolve, reject) => {
      this.#worker.once('error', reject)
      this.#worker.once('exit', () => reject(new Error('local store writer stopped before it was ready')))
      this.#worker.on('message', (message: WriteResult | 'ready') => {
        if (message === 'ready') resolve()
        else this.#settle(message)
      })
    })
    this.#ready.catch(() => undefined)
    this.#worker.on('error', (err: unknown) => this.#fail(`local store writer failed: ${(err as Error | undefined)?.message ?? String(err)}`))
    this.#worker.on('exit', () => this.#fail('local store writer stopped'))
    // After the listeners (adding a 'message' listener refs the worker again): an idle writer
    // does not keep the process alive.
    this.#worker.unref()
  }

  /** Waits for the writer thread to have the database open, however slow the machine. */
  async connect (): Promise<void> {
    this.#worker.ref()
    try {
      await this.#ready
    } finally {
      if (this.#waiting.size === 0) this.#worker.unref()
    }
  }

  publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const down = this.#closed ? 'local store is closed' : this.#down
    if (down !== undefined) return Promise.resolve(events.map(() => ({ ok: false as const, error: new BrokerError(down, { retryable: true, reason: 'closed', down: true }) })))
    return new Promise(resolve => {
      const now = Date.now()
      for (const { event: e, body } of events) this.#rows.push([e.id, e.tenantId, e.type, e.routingKey, now, body])
      this.#resolvers.push({ count: events.length, resolve })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#send())
      }
    })
  }

  #send (): void {
    this.#scheduled = false
    if (this.#rows.length === 0) return
    const id = this.#nextId++
    const rows = this.#rows
    const resolvers = this.#resolvers
    this.#rows = []
    this.#resolvers = []
    if (this.#waiting.size === 0) this.#worker.ref() // a pending write keeps the process alive
    this.#waiting.set(id, { count: rows.length, resolve: outcomes => { let at = 0; for (const r of resolvers) { r.resolve(outcomes.slice(at, at + r.count)); at += r.count } } })
    this.#worker.postMessage({ id, rows } satisfies WriteRequest)
  }

  #settle (result: WriteResult): void {
    const waiting = this.#waiting.get(result.id)
    if (waiting === undefined) return
    this.#waiting.delete(result.id)
    let outcome: PublishOutcome = { ok: true }
    if (result.error !== undefined) {
      const code = result.error.code
      const retryable = TRANSIENT.some(c => code.startsWith(c))
      outcome = { ok: false, error: new BrokerError(`local store write failed: ${code}`, { retryable, reason: code.toLowerCase() }) }
    }
    waiting.resolve(new Array(waiting.count).fill(outcome))
    if (this.#waiting.size === 0) this.#idle()
  }

  #idle (): void {
    if (this.#drained !== undefined) this.#drained()
    else this.#worker.unref()
  }

  #fail (why: string): void {
    if (this.#closed) return
    this.#down = why
    const error = new BrokerError(why, { retryable: true, reason: 'writer_failed', down: true })
    for (const waiting of this.#waiting.values()) waiting.resolve(new Array(waiting.count).fill({ ok: false, error }))
    this.#waiting.clear()
    this.#idle()
  }

  read (query: ReadQuery): ReadPage {
    const after = query.after ?? 0
    const rows = (query.type === undefined
      ? this.#readAll.all(query.tenantId, after, query.limit)
      : this.#readType.all(query.tenantId, query.type, after, query.limit)) as { seq: number, envelope: string }[]
    return { events: rows.map(r => r.envelope), next: rows.at(-1)?.seq ?? after }
  }

  async health (): Promise<BrokerHealth> {
    if (this.#closed) return { up: false, detail: 'closed' }
    if (this.#down !== undefined) return { up: false, detail: this.#down }
    try {
      this.#db.prepare('SELECT 1').get()
      return { up: true }
    } catch (err) {
      return { up: false, detail: (err as Error).message }
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#send()
    // Every accepted publish is answered before the writer goes; the worker is unref'd while
    // idle, and while it finishes it must keep the process alive.
    this.#worker.ref()
    if (this.#waiting.size > 0) await new Promise<void>(resolve => { this.#drained = resolve })
    this.#closed = true
    const exited = new Promise(resolve => this.#worker.once('exit', resolve))
    this.#worker.postMessage('close')
    await exited
  }
}
