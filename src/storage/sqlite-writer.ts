import { Worker } from 'node:worker_threads'
import { messageOf } from '../errors.js'

/** One statement the writer runs: its name (from the statements it was given) and parameters. */
export type Statement = [name: string, ...params: unknown[]]

/** A write that did not commit: SQLite's code (SQLITE_FULL, …), or WRITER_DOWN when the thread is gone. */
export class WriteError extends Error {
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.name = 'WriteError'
    this.code = code
  }
}

interface Result { id: number, changes?: number[], error?: { code: string, message: string } }
interface Pending { resolve: (changes: number) => void, reject: (err: WriteError) => void }

/**
 * Writes to the embedded database from a worker thread (src/storage/sqlite-writer.cjs), so that a
 * commit's fsync never blocks the event loop. Writes asked for in the same tick travel as one
 * message, and messages that arrive during a commit share the next transaction: one fsync for
 * many writes. Each write resolves once it is on disk, with the rows it changed.
 */
export class SqliteWriter {
  readonly #worker: Worker
  readonly #waiting = new Map<number, Pending[]>()
  #requests: Statement[][] = []
  #callers: Pending[] = []
  #scheduled = false
  #nextId = 0
  #down: string | undefined
  #closed = false
  #drained: (() => void) | undefined
  readonly #ready: Promise<void>

  readonly #gatherMs: number

  /**
   * `synchronous`: FULL (default) fsyncs every commit; NORMAL survives a crash of the process,
   * not of the machine. `gatherMs`: writes nobody waits on can gather for this long (or up to
   * 512 of them) into one message and one transaction; 0 (default): sent at the end of the tick.
   */
  constructor (path: string, statements: Record<string, string>, options: { synchronous?: 'FULL' | 'NORMAL', gatherMs?: number } = {}) {
    this.#gatherMs = options.gatherMs ?? 0
    const workerData = { path, statements, synchronous: options.synchronous ?? 'FULL' }
    this.#worker = new Worker(new URL('./sqlite-writer.cjs', import.meta.url), { workerData })
    this.#ready = new Promise((resolve, reject) => {
      this.#worker.once('error', reject)
      this.#worker.once('exit', () => reject(new Error('SQLite writer stopped before it was ready')))
      this.#worker.on('message', (message: Result | 'ready') => {
        if (message === 'ready') resolve()
        else this.#settle(message)
      })
    })
    this.#ready.catch(() => undefined)
    this.#worker.on('error', (err: unknown) => this.#fail(`SQLite writer failed: ${messageOf(err)}`))
    this.#worker.on('exit', () => this.#fail('SQLite writer stopped'))
    // After the listeners (adding a 'message' listener refs the worker again): an idle writer
    // does not keep the process alive.
    this.#worker.unref()
  }

  /** Why writes fail now (the thread is gone, or closed); undefined while it works. */
  get down (): string | undefined {
    return this.#closed ? 'closed' : this.#down
  }

  /** Waits for the thread to have the database open, however slow the machine. */
  async connect (): Promise<void> {
    this.#worker.ref()
    try {
      await this.#ready
    } finally {
      if (this.#waiting.size === 0) this.#worker.unref()
    }
  }

  /** Runs the statements in one transaction with the other writes of this tick; resolves with the rows changed. */
  write (statements: Statement[]): Promise<number> {
    const down = this.down
    if (down !== undefined) return Promise.reject(new WriteError('WRITER_DOWN', down))
    return new Promise((resolve, reject) => {
      this.#requests.push(statements)
      this.#callers.push({ resolve, reject })
      if (this.#requests.length >= 512) this.#send()
      else if (!this.#scheduled) {
        this.#scheduled = true
        if (this.#gatherMs === 0) setImmediate(() => this.#send())
        else setTimeout(() => this.#send(), this.#gatherMs)
      }
    })
  }

  #send (): void {
    this.#scheduled = false
    if (this.#requests.length === 0) return
    const id = this.#nextId++
    const requests = this.#requests
    this.#waiting.set(id, this.#callers)
    this.#requests = []
    this.#callers = []
    if (this.#waiting.size === 1) this.#worker.ref() // a pending write keeps the process alive
    this.#worker.postMessage({ id, requests })
  }

  #settle (result: Result): void {
    const callers = this.#waiting.get(result.id)
    if (callers === undefined) return
    this.#waiting.delete(result.id)
    const { error, changes } = result
    callers.forEach((caller, i) => {
      if (error === undefined) caller.resolve(changes?.[i] ?? 0)
      else caller.reject(new WriteError(error.code, error.message))
    })
    if (this.#waiting.size === 0) this.#idle()
  }

  #idle (): void {
    if (this.#drained !== undefined) this.#drained()
    else this.#worker.unref()
  }

  #fail (why: string): void {
    if (this.#closed) return
    this.#down = why
    const error = new WriteError('WRITER_DOWN', why)
    for (const callers of this.#waiting.values()) for (const caller of callers) caller.reject(error)
    this.#waiting.clear()
    for (const caller of this.#callers) caller.reject(error)
    this.#requests = []
    this.#callers = []
    this.#idle()
  }

  /** Every write asked for is answered before the thread goes. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#send()
    this.#worker.ref()
    if (this.#waiting.size > 0 && this.#down === undefined) await new Promise<void>(resolve => { this.#drained = resolve })
    this.#closed = true
    if (this.#down !== undefined) return
    const exited = new Promise(resolve => this.#worker.once('exit', resolve))
    this.#worker.postMessage('close')
    await exited
  }
}
