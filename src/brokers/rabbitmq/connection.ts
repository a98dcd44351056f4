import { once } from 'node:events'
import amqplib, { type ChannelModel, type ConfirmChannel, type Message, type Options, type RecoveringChannelModel } from 'amqplib'
import type { FastifyBaseLogger } from 'fastify'
import { BrokerError } from '../broker.js'

/** What publishing to one exchange needs declared, run again after every reconnect. */
export type TopologySetup = (model: ChannelModel) => Promise<void>

/** A confirm's result: null = confirmed, RETURNED = unroutable and returned, else why it failed. */
export const RETURNED = Symbol('returned')
export type ConfirmResult = Error | typeof RETURNED | null

/**
 * One RabbitMQ connection, shared by every destination with the same URL: amqplib's recovery
 * reconnects with backoff and jitter, and on every connect re-runs each destination's topology
 * and opens the confirm channel they publish on.
 */
export class AmqpConnection {
  readonly url: string
  readonly #log: FastifyBaseLogger
  readonly #connectTimeoutMs: number
  readonly #setups = new Set<TopologySetup>()
  #conn: RecoveringChannelModel | undefined
  #connecting: Promise<void> | undefined
  #model: ChannelModel | undefined
  #channel: ConfirmChannel | undefined
  #blocked: string | undefined
  #lastError: string | undefined = 'not connected yet'
  /** `exchange \0 messageId` the broker returned as unroutable; their confirm arrives after the return. */
  readonly #returned = new Set<string>()
  /** Publishes waiting for their confirm; failed at once when the broker blocks publishers. */
  readonly #inflight = new Set<(result: ConfirmResult | BrokerError) => void>()
  #users = 0
  #closing = false

  constructor (url: string, log: FastifyBaseLogger, connectTimeoutMs: number) {
    this.url = url
    this.#log = log
    this.#connectTimeoutMs = connectTimeoutMs
  }

  /** A destination joins: its topology is declared on this and every later connect. */
  use (setup: TopologySetup): void {
    this.#users++
    this.#setups.add(setup)
  }

  /** Connects once for all its destinations; later calls wait for the same attempt. */
  connect (): Promise<void> {
    this.#connecting ??= this.#connect()
    return this.#connecting
  }

  async #connect (): Promise<void> {
    const log = this.#log
    const conn = await amqplib.connect(this.url, {
      // Nagle would hold small publish frames back waiting for ACKs: latency for nothing.
      noDelay: true,
      recovery: {
        waitForConnect: false,
        initialDelay: 100,
        maxDelay: 2000,
        jitter: 0.5,
        maxRetries: Infinity,
        setup: (model: ChannelModel) => this.#setup(model)
      }
    })
    this.#conn = conn
    conn.on('connect', () => {
      this.#lastError = undefined
      log.info({ broker: 'rabbitmq' }, 'connected to RabbitMQ')
    })
    conn.on('disconnect', (err: Error) => {
      this.#channel = undefined
      this.#blocked = undefined
      this.#lastError = `connection lost: ${err.message}`
      if (!this.#closing) log.error({ broker: 'rabbitmq', err: err.message }, 'RabbitMQ connection lost; reconnecting')
    })
    conn.on('connect-failed', (err: Error) => {
      this.#lastError = `cannot connect: ${err.message}`
    })
    conn.on('reconnect-scheduled', (info: { attempt: number, delay: number, error: Error }) => {
      log.warn({ broker: 'rabbitmq', attempt: info.attempt, delayMs: Math.round(info.delay), err: info.error.message }, 'RabbitMQ reconnect scheduled')
    })
    conn.on('blocked', (reason: string) => {
      this.#blocked = reason
      log.warn({ broker: 'rabbitmq', reason, inflight: this.#inflight.size }, 'RabbitMQ blocked publishing (resource alarm)')
      // Their confirms would only come once the alarm clears: answer now, the client retries
      // later (a confirm that still comes makes at most a duplicate with the same event id).
      const blocked = new BrokerError(`RabbitMQ is blocking publishers: ${reason}`, { retryable: true, reason: 'blocked', down: true })
      for (const settle of this.#inflight) settle(blocked)
    })
    conn.on('unblocked', () => {
      this.#blocked = undefined
      log.info({ broker: 'rabbitmq' }, 'RabbitMQ unblocked publishing')
    })
    conn.on('error', (err: Error) => log.warn({ broker: 'rabbitmq', err: err.message }, 'RabbitMQ connection error'))
    // Serve (with 503s) rather than refuse to start when RabbitMQ is late; recovery keeps trying.
    const connected = await Promise.race([
      conn.waitForConnect().then(() => true, () => false),
      new Promise<boolean>(resolve => setTimeout(resolve, this.#connectTimeoutMs, false).unref())
    ])
    if (!connected) log.error({ broker: 'rabbitmq', err: this.#lastError }, 'RabbitMQ not reachable yet; answering 503 until it is')
  }

  async #setup (model: ChannelModel): Promise<void> {
    this.#model = model
    for (const setup of this.#setups) await setup(model)
    const ch = await model.createConfirmChannel()
    ch.on('return', (msg: Message) => {
      const id = msg.properties.messageId as string | undefined
      if (id !== undefined) this.#returned.add(`${msg.fields.exchange}\0${id}`)
    })
    ch.on('error', (err: Error) => this.#log.warn({ broker: 'rabbitmq', err: err.message }, 'RabbitMQ channel error'))
    ch.on('close', () => { if (this.#channel === ch) this.#channel = undefined })
    this.#channel = ch
  }

  /** Why publishing cannot work right now, or undefined when it can. */
  unavailable (): BrokerError | undefined {
    if (this.#blocked !== undefined) return new BrokerError(`RabbitMQ is blocking publishers: ${this.#blocked}`, { retryable: true, reason: 'blocked', down: true })
    if (this.#channel === undefined) return new BrokerError(`RabbitMQ is not connected (${this.#lastError ?? 'no channel'})`, { retryable: true, reason: 'disconnected', down: true })
    return undefined
  }

  /** Publishes one message and resolves with its confirm (or why there was none). */
  async publish (exchange: string, routingKey: string, content: Buffer, options: Options.Publish & { messageId: string }): Promise<ConfirmResult | BrokerError> {
    const ch = this.#channel
    if (ch === undefined) return this.unavailable() ?? new BrokerError('no channel', { retryable: true, reason: 'disconnected' })
    const returnedKey = `${exchange}\0${options.messageId}`
    let writable = true
    const confirmed = new Promise<ConfirmResult | BrokerError>(settle => {
      const resolve = (result: ConfirmResult | BrokerError) => {
        this.#inflight.delete(resolve)
        settle(result)
      }
      this.#inflight.add(resolve)
      try {
        writable = ch.publish(exchange, routingKey, content, options, (err: Error | null) => {
          // RabbitMQ sends basic.return before the confirm of the same message.
          if (err === null && this.#returned.delete(returnedKey)) resolve(RETURNED)
          else resolve(err)
        })
      } catch (err) {
        resolve(err as Error)
      }
    })
    // Respect the socket's back-pressure rather than buffer without bound.
    if (!writable) await once(ch, 'drain').catch(() => undefined)
    return confirmed
  }

  /** Messages waiting in a queue (the alternate exchange's), or undefined when unknown. */
  async queueDepth (queue: string): Promise<number | undefined> {
    if (this.#model === undefined || this.#channel === undefined) return undefined
    // A channel of its own: a failed check closes the channel it runs on.
    const ch = await this.#model.createChannel().catch(() => undefined)
    if (ch === undefined) return undefined
    ch.on('error', () => {})
    try {
      return (await ch.checkQueue(queue)).messageCount
    } catch {
      return undefined
    } finally {
      await ch.close().catch(() => undefined)
    }
  }

  /** A destination leaves; the last one waits for outstanding confirms and closes the connection. */
  async release (): Promise<void> {
    if (--this.#users > 0) return
    this.#closing = true
    await this.#channel?.waitForConfirms().catch(() => undefined)
    await this.#conn?.close().catch(() => undefined)
    this.#channel = undefined
  }
}

/** One connection per distinct URL, shared by the destinations that name it. */
export class AmqpConnections {
  readonly #byUrl = new Map<string, AmqpConnection>()
  constructor (readonly log: FastifyBaseLogger, readonly connectTimeoutMs: number) {}

  for (url: string): AmqpConnection {
    let conn = this.#byUrl.get(url)
    if (conn === undefined) {
      conn = new AmqpConnection(url, this.log, this.connectTimeoutMs)
      this.#byUrl.set(url, conn)
    }
    return conn
  }
}
