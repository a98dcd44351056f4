import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import amqplib, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib'
import type { Test } from 'tap'
import { serviceSkip } from '../services.js'

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'
const run = promisify(execFile)

/**
 * Skip reason when RabbitMQ is absent; with REQUIRE_BROKERS=1 (CI) absence fails instead. Where it
 * is required, an absence is waited out first, for up to two minutes: another test file may have
 * stopped the broker application for its outage test (it holds the turn, below, and starts it
 * again), and that is no reason for this file to fail.
 */
export async function rabbitSkip (): Promise<string | false> {
  return await serviceSkip('RabbitMQ', {
    at: AMQP_URL,
    probe: async () => { await (await amqplib.connect(AMQP_URL, { timeout: 2000 })).close() },
    hint: 'start it with rabbitmq-server -detached',
    waitMs: 120_000
  })
}

/**
 * The RabbitMQ test files take turns: one of them stops and starts the broker application
 * (outage tests), which would break the other's connections. A directory made with mkdir (atomic)
 * holds the turn; a holder that died leaves it to the next. tap runs files two at a time, so the
 * wait is at most one file's run.
 */
export async function takeRabbitMqTurn (t: Test): Promise<void> {
  const lock = join(tmpdir(), 'evg-test-rabbitmq.lock')
  for (;;) {
    try {
      mkdirSync(lock)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const holder = holderOf(lock)
      // A holder that died, or one that never wrote its pid (killed right after mkdir), leaves it.
      const abandoned = holder !== undefined ? !isAlive(holder) : ageMs(lock) > 10_000
      if (abandoned) rmSync(lock, { recursive: true, force: true })
      else await new Promise(resolve => setTimeout(resolve, 200)) // another process holds it: nothing to await across processes
      continue
    }
    try {
      writeFileSync(join(lock, 'pid'), String(process.pid))
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      // taken away between the mkdir and the write: try again
    }
  }
  // Only ever our own: a turn released twice (teardown, then exit) must not end the next holder's.
  const release = () => { if (holderOf(lock) === process.pid) rmSync(lock, { recursive: true, force: true }) }
  t.teardown(release)
  process.once('exit', release)
}

function holderOf (lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(lock, 'pid'), 'utf8'))
    return pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function ageMs (path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return 0
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function uniqueName (prefix: string): string {
  return `evg-test.${prefix}.${randomUUID().slice(0, 8)}`
}

export async function rabbitmqctl (...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', args, { timeout: 60000 })
  return stdout
}

/** An independent consumer: a durable queue bound to the exchange, collecting what arrives. */
export class Consumer {
  readonly messages: ConsumeMessage[] = []
  #waiters: { count: number, resolve: () => void }[] = []
  private constructor (private conn: ChannelModel, private ch: Channel, readonly queue: string) {}

  static async bind (t: Test, exchange: string, binding = '#', options: { consume?: boolean } = {}): Promise<Consumer> {
    const conn = await amqplib.connect(AMQP_URL)
    // An outage test breaks this connection on purpose (a write on a reset socket): the test then
    // reconnects; what it asserts is what arrives, not the connection.
    conn.on('error', () => undefined)
    const ch = await conn.createChannel()
    const queue = uniqueName('queue')
    await ch.checkExchange(exchange)
    await ch.assertQueue(queue, { durable: true })
    await ch.bindQueue(queue, exchange, binding)
    const consumer = new Consumer(conn, ch, queue)
    if (options.consume !== false) await consumer.start()
    t.teardown(async () => {
      await consumer.ch.deleteQueue(queue).catch(() => undefined)
      await consumer.conn.close().catch(() => undefined)
    })
    return consumer
  }

  /** A fresh connection to the same durable queue (after the broker restarted). */
  async reconnect (): Promise<void> {
    await this.conn.close().catch(() => undefined)
    this.conn = await amqplib.connect(AMQP_URL)
    this.conn.on('error', () => undefined)
    this.ch = await this.conn.createChannel()
  }

  async start (): Promise<void> {
    await this.ch.consume(this.queue, msg => {
      if (msg === null) return
      this.messages.push(msg)
      this.ch.ack(msg)
      this.#waiters = this.#waiters.filter(w => {
        if (this.messages.length < w.count) return true
        w.resolve()
        return false
      })
    })
  }

  /**
   * Resolves once a message with each of `ids` has arrived, or after `ms` (the caller then asserts
   * which are missing). Counting would not do where a message the gateway answered 503 for may
   * have reached the queue as well (the broker had it, the confirm did not come back).
   */
  async waitForIds (ids: readonly string[], ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms
    const missing = () => {
      const received = new Set(this.messages.map(m => m.properties.messageId as string))
      return ids.some(id => !received.has(id))
    }
    while (missing() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  }

  /** Resolves once `count` messages have arrived. */
  waitFor (count: number): Promise<void> {
    if (this.messages.length >= count) return Promise.resolve()
    return new Promise(resolve => this.#waiters.push({ count, resolve }))
  }
}

/** Deletes an exchange and its alternate exchange + queue when the test ends. */
export function cleanupExchange (t: Test, exchange: string): void {
  t.teardown(async () => {
    const conn = await amqplib.connect(AMQP_URL).catch(() => undefined)
    if (conn === undefined) return
    const ch = await conn.createChannel()
    for (const q of [`${exchange}.unrouted`]) await ch.deleteQueue(q).catch(() => undefined)
    for (const x of [exchange, `${exchange}.unrouted`]) await ch.deleteExchange(x).catch(() => undefined)
    await conn.close().catch(() => undefined)
  })
}
