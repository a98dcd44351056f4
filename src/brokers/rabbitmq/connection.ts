import { Writable } from 'node:stream'
import amqplib, { type ChannelModel, type RecoveringChannelModel } from 'amqplib'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError } from '../../errors.js'
import { safeUrl } from '../../observability/safe-url.js'
import { BrokerError } from '../broker.js'
import { coalesceWrites } from './coalesce.js'

/** A destination on a shared connection: told when a connection comes up and when it goes. */
export interface ConnectionUser {
  /** Declares its topology and opens its channel; never throws (its own failure is its own state). */
  attach (model: ChannelModel): Promise<void>
  detach (): void
}

/** How long closing the connection waits for the broker's answer. */
const CLOSE_CONNECTION_MS = 2000

/** At most how long closing a RabbitMQ destination takes: its confirms still due, then the connection (server.ts's shutdown budget). */
export const RABBITMQ_CLOSE_MS = 2000 + CLOSE_CONNECTION_MS

// amqplib reports an unknown vhost as the server closing instead of opening the connection.
const REFUSED = /ACCESS[-_]REFUSED|NOT[-_]ALLOWED|vhost|Expected ConnectionOpenOk/i

/**
 * One RabbitMQ connection, shared by every destination with the same URL: amqplib's recovery
 * reconnects with backoff and jitter, and on every connect each destination declares its
 * topology and opens its own confirm channel, so one destination's failure stays its own.
 */
export class AmqpConnection {
  readonly url: string
  readonly #log: FastifyBaseLogger
  readonly #connectTimeoutMs: number
  readonly #users = new Set<ConnectionUser>()
  #conn: RecoveringChannelModel | undefined
  #connecting: Promise<void> | undefined
  #model: ChannelModel | undefined
  #blocked: string | undefined
  #lastError: string | undefined = 'not connected yet'
  /** Publishes waiting for their confirm, on every channel; failed at once when the broker blocks publishers. */
  readonly inflight = new Set<(result: BrokerError) => void>()
  #closing = false

  readonly #heartbeatSeconds: number | undefined

  constructor (url: string, log: FastifyBaseLogger, connectTimeoutMs: number, heartbeatSeconds?: number) {
    this.url = url
    this.#heartbeatSeconds = heartbeatSeconds
    this.#log = log
    this.#connectTimeoutMs = connectTimeoutMs
  }

  use (user: ConnectionUser): void {
    this.#users.add(user)
  }

  /** The connection when it is up: destinations open channels on it. */
  get model (): ChannelModel | undefined {
    return this.#closing ? undefined : this.#model
  }

  /** Connects once for all its destinations; later calls wait for the same attempt. */
  connect (): Promise<void> {
    this.#connecting ??= this.#connect()
    return this.#connecting
  }

  async #connect (): Promise<void> {
    const log = this.#log
    const conn = await amqplib.connect(withHeartbeat(this.url, this.#heartbeatSeconds), {
      // Nagle would hold small publish frames back waiting for ACKs: latency for nothing.
      noDelay: true,
      recovery: {
        waitForConnect: false,
        initialDelay: 100,
        maxDelay: 2000,
        jitter: 0.5,
        maxRetries: Infinity,
        setup: async (model: ChannelModel) => {
          // Frames written in the same tick (a batch's messages, concurrent requests) share a
          // syscall. amqplib's types leave out the socket its connection writes to.
          const { connection } = model
          if ('stream' in connection && connection.stream instanceof Writable) coalesceWrites(connection.stream)
          this.#model = model
          await Promise.all([...this.#users].map(u => u.attach(model)))
        }
      }
    })
    this.#conn = conn
    conn.on('connect', () => {
      this.#lastError = undefined
      log.info({ broker: 'rabbitmq' }, 'connected to RabbitMQ')
    })
    conn.on('disconnect', (err: Error) => {
      this.#model = undefined
      this.#blocked = undefined
      this.#lastError = `connection lost: ${err.message}`
      for (const u of this.#users) u.detach()
      if (!this.#closing) log.error({ broker: 'rabbitmq', err: err.message }, 'RabbitMQ connection lost; reconnecting')
    })
    conn.on('connect-failed', (err: Error) => {
      this.#lastError = `cannot connect: ${err.message}`
    })
    conn.on('reconnect-scheduled', (info: { attempt: number, delay: number, error: Error }) => {
      const { attempt, delay, error } = info
      log.warn({ broker: 'rabbitmq', attempt, delayMs: Math.round(delay), err: error.message }, 'RabbitMQ reconnect scheduled')
    })
    conn.on('blocked', (reason: string) => {
      this.#blocked = reason
      log.warn({ broker: 'rabbitmq', reason, inflight: this.inflight.size }, 'RabbitMQ blocked publishing (resource alarm)')
      // Their confirms would only come once the alarm clears: answer now, the client retries
      // later (a confirm that still comes makes at most a duplicate with the same event id).
      const blocked = new BrokerError(`RabbitMQ is blocking publishers: ${reason}`, {
        retryable: true,
        reason: 'blocked',
        down: true
      })
      for (const settle of this.inflight) settle(blocked)
    })
    conn.on('unblocked', () => {
      this.#blocked = undefined
      log.info({ broker: 'rabbitmq' }, 'RabbitMQ unblocked publishing')
    })
    conn.on('error', (err: Error) => log.warn({ broker: 'rabbitmq', err: err.message }, 'RabbitMQ connection error'))
    // A refused login or an unknown vhost will not heal by retrying: the start fails, saying so.
    const refused = new Promise<Error>(resolve => conn.on('connect-failed', (err: Error) => {
      if (REFUSED.test(err.message)) resolve(err)
    }))
    // Serve (with 503s) rather than refuse to start when RabbitMQ is late; recovery keeps trying.
    const outcome = await Promise.race([
      conn.waitForConnect().then(() => true, () => false),
      new Promise<boolean>(resolve => setTimeout(resolve, this.#connectTimeoutMs, false).unref()),
      refused
    ])
    if (outcome instanceof Error) {
      this.#closing = true
      await conn.close().catch(() => undefined)
      const why = /ConnectionOpenOk/.test(outcome.message)
        ? `the vhost '${decodeURIComponent(new URL(this.url).pathname.slice(1)) || '/'}' does not exist or this user may not use it`
        : outcome.message.replace(/^.*?with message "?/, '').replace(/"$/, '')
      throw new ConfigError(`RabbitMQ at ${safeUrl(this.url)} refused the connection: ${why}`)
    }
    if (!outcome) log.error({ broker: 'rabbitmq', err: this.#lastError }, 'RabbitMQ not reachable yet; answering 503 until it is')
  }

  /** Why nothing can be published on this connection right now, or undefined. */
  unavailable (): BrokerError | undefined {
    if (this.#blocked !== undefined) {
      return new BrokerError(`RabbitMQ is blocking publishers: ${this.#blocked}`, { retryable: true, reason: 'blocked', down: true })
    }
    if (this.model === undefined) {
      return new BrokerError(`RabbitMQ is not connected (${this.#lastError ?? 'closing'})`, {
        retryable: true,
        reason: 'disconnected',
        down: true
      })
    }
    return undefined
  }

  /** A destination leaves; the last one closes the connection. */
  async release (user: ConnectionUser): Promise<void> {
    this.#users.delete(user)
    if (this.#users.size > 0) return
    this.#closing = true
    // Bounded: closing waits for the broker's Close-Ok, which a silent network never brings; then
    // the socket is destroyed, so shutdown goes on to close the outbox and the databases.
    const model = this.#model
    const closed = await Promise.race([
      (this.#conn?.close() ?? Promise.resolve()).then(() => true, () => true),
      new Promise<false>(resolve => setTimeout(resolve, CLOSE_CONNECTION_MS, false).unref())
    ])
    if (!closed && model !== undefined) {
      const { connection } = model
      if ('stream' in connection && connection.stream instanceof Writable) connection.stream.destroy()
      this.#log.warn({ broker: 'rabbitmq' }, `RabbitMQ did not answer the close within ${CLOSE_CONNECTION_MS} ms: connection dropped`)
    }
    this.#model = undefined
  }
}

/** One connection per distinct URL, shared by the destinations that name it. */
export class AmqpConnections {
  readonly #byUrl = new Map<string, AmqpConnection>()
  constructor (readonly log: FastifyBaseLogger, readonly connectTimeoutMs: number, readonly heartbeatSeconds?: number) {}

  for (url: string): AmqpConnection {
    let conn = this.#byUrl.get(url)
    if (conn === undefined) {
      conn = new AmqpConnection(url, this.log, this.connectTimeoutMs, this.heartbeatSeconds)
      this.#byUrl.set(url, conn)
    }
    return conn
  }
}

/**
 * The URL with a heartbeat asked for, unless it names its own: without one the server's (60 s)
 * applies, and a network that drops packets silently leaves the connection "up" for minutes while
 * confirms never come. amqplib reads it from the URL's query.
 */
export function withHeartbeat (url: string, seconds: number | undefined): string {
  if (seconds === undefined || /[?&]heartbeat=/.test(url)) return url
  return `${url}${url.includes('?') ? '&' : '?'}heartbeat=${seconds}`
}
