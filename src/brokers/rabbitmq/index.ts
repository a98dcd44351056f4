import { once } from 'node:events'
import amqplib, { type ChannelModel, type ConfirmChannel, type Message, type RecoveringChannelModel } from 'amqplib'
import type { FastifyBaseLogger } from 'fastify'
import { CLOUDEVENTS_CONTENT_TYPE } from '../../envelope.js'
import { BrokerError, type Broker, type BrokerHealth, type OutgoingEvent, type PublishOutcome } from '../broker.js'
import { declareTopology } from './topology.js'

export interface RabbitMqOptions {
  url: string
  exchange: string
  alternateExchange?: string
  /** How long start-up waits for the first connection before serving 503s and retrying. */
  connectTimeoutMs: number
  /** Confirm channels publishes are spread over (RabbitMQ handles each channel in its own process). */
  channels?: number
  log: FastifyBaseLogger
}

const RETURNED = Symbol('returned')

/**
 * RabbitMQ through amqplib: persistent, mandatory publishes on confirm channels to a durable
 * topic exchange. A 202 is given only on the broker's confirm. amqplib's recovery reconnects
 * with backoff and jitter and re-runs our setup (topology, channels) on every connection.
 */
export class RabbitMqBroker implements Broker {
  readonly name = 'rabbitmq'
  readonly #opts: RabbitMqOptions
  #conn: RecoveringChannelModel | undefined
  #model: ChannelModel | undefined
  #channels: ConfirmChannel[] = []
  #next = 0
  #blocked: string | undefined
  #lastError: string | undefined = 'not connected yet'
  #alternateExchange: string | undefined
  /** messageIds the broker returned as unroutable; their confirm arrives after the return. */
  readonly #returned = new Set<string>()
  /** Publishes waiting for their confirm; failed at once when the broker blocks publishers. */
  readonly #inflight = new Set<(result: Error | typeof RETURNED | null) => void>()
  #closing = false

  constructor (opts: RabbitMqOptions) {
    this.#opts = opts
  }

  async connect (): Promise<void> {
    const log = this.#opts.log
    const conn = await amqplib.connect(this.#opts.url, {
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
      log.info({ broker: this.name, exchange: this.#opts.exchange }, 'connected to RabbitMQ')
    })
    conn.on('disconnect', (err: Error) => {
      this.#channels = []
      this.#blocked = undefined
      this.#lastError = `connection lost: ${err.message}`
      if (!this.#closing) log.error({ broker: this.name, err: err.message }, 'RabbitMQ connection lost; reconnecting')
    })
    conn.on('connect-failed', (err: Error) => {
      this.#lastError = `cannot connect: ${err.message}`
    })
    conn.on('reconnect-scheduled', (info: { attempt: number, delay: number, error: Error }) => {
      log.warn({ broker: this.name, attempt: info.attempt, delayMs: Math.round(info.delay), err: info.error.message }, 'RabbitMQ reconnect scheduled')
    })
    conn.on('blocked', (reason: string) => {
      this.#blocked = reason
      log.warn({ broker: this.name, reason, inflight: this.#inflight.size }, 'RabbitMQ blocked publishing (resource alarm)')
      // Their confirms would only come once the alarm clears: answer now, the client retries
      // later (a confirm that still comes makes at most a duplicate with the same event id).
      const blocked = new BrokerError(`RabbitMQ is blocking publishers: ${reason}`, { retryable: true, reason: 'blocked', down: true })
      for (const settle of this.#inflight) settle(blocked)
    })
    conn.on('unblocked', () => {
      this.#blocked = undefined
      log.info({ broker: this.name }, 'RabbitMQ unblocked publishing')
    })
    conn.on('error', (err: Error) => log.warn({ broker: this.name, err: err.message }, 'RabbitMQ connection error'))
    // Serve (with 503s) rather than refuse to start when RabbitMQ is late; recovery keeps trying.
    const connected = await Promise.race([
      conn.waitForConnect().then(() => true, () => false),
      new Promise<boolean>(resolve => setTimeout(resolve, this.#opts.connectTimeoutMs, false).unref())
    ])
    if (!connected) log.error({ broker: this.name, err: this.#lastError }, 'RabbitMQ not reachable yet; answering 503 until it is')
  }

  async #setup (model: ChannelModel): Promise<void> {
    this.#model = model
    const topology = await declareTopology(model, { exchange: this.#opts.exchange, ...(this.#opts.alternateExchange === undefined ? {} : { alternateExchange: this.#opts.alternateExchange }) })
    if (topology.warning !== undefined) this.#opts.log.warn({ broker: this.name }, topology.warning)
    this.#alternateExchange = topology.alternateExchange
    const channels: ConfirmChannel[] = []
    for (let i = 0; i < (this.#opts.channels ?? 1); i++) {
      const ch = await model.createConfirmChannel()
      ch.on('return', (msg: Message) => {
        const id = msg.properties.messageId as string | undefined
        if (id !== undefined) this.#returned.add(id)
      })
      ch.on('error', (err: Error) => this.#opts.log.warn({ broker: this.name, err: err.message }, 'RabbitMQ channel error'))
      ch.on('close', () => { this.#channels = this.#channels.filter(c => c !== ch) })
      channels.push(ch)
    }
    this.#channels = channels
  }

  #unavailable (): BrokerError | undefined {
    if (this.#blocked !== undefined) return new BrokerError(`RabbitMQ is blocking publishers: ${this.#blocked}`, { retryable: true, reason: 'blocked', down: true })
    if (this.#channels.length === 0) return new BrokerError(`RabbitMQ is not connected (${this.#lastError ?? 'no channel'})`, { retryable: true, reason: 'disconnected', down: true })
    return undefined
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const down = this.#unavailable()
    if (down !== undefined) return events.map(() => ({ ok: false, error: down }))
    return Promise.all(events.map(e => this.#publishOne(e)))
  }

  async #publishOne (event: OutgoingEvent): Promise<PublishOutcome> {
    const ch = this.#channels[this.#next++ % this.#channels.length]
    if (ch === undefined) return { ok: false, error: this.#unavailable() ?? new BrokerError('no channel', { retryable: true, reason: 'disconnected' }) }
    const env = event.envelope
    const headers: Record<string, string> = { 'x-event-type': env.type, 'x-tenant-id': env.tenantid, 'x-correlation-id': env.correlationid }
    if (env.userid !== undefined) headers['x-user-id'] = env.userid
    if (env.accountid !== undefined) headers['x-account-id'] = env.accountid
    if (env.traceparent !== undefined) headers.traceparent = env.traceparent
    let writable = true
    const confirmed = new Promise<Error | typeof RETURNED | null>(settle => {
      const resolve = (result: Error | typeof RETURNED | null) => {
        this.#inflight.delete(resolve)
        settle(result)
      }
      this.#inflight.add(resolve)
      try {
        writable = ch.publish(this.#opts.exchange, event.routingKey, Buffer.from(event.body), {
          persistent: true,
          mandatory: true,
          contentType: CLOUDEVENTS_CONTENT_TYPE,
          messageId: env.id,
          correlationId: env.correlationid,
          timestamp: Math.floor(Date.parse(env.time) / 1000),
          type: env.type,
          appId: env.source,
          headers
        }, (err: Error | null) => {
          // RabbitMQ sends basic.return before the confirm of the same message.
          if (err === null && this.#returned.delete(env.id)) resolve(RETURNED)
          else resolve(err)
        })
      } catch (err) {
        resolve(err as Error)
      }
    })
    // Respect the socket's back-pressure rather than buffer without bound.
    if (!writable) await once(ch, 'drain').catch(() => undefined)
    const result = await confirmed
    if (result === null) return { ok: true }
    if (result === RETURNED) {
      return { ok: false, error: new BrokerError(`no queue is bound for routing key '${event.routingKey}' and no alternate exchange keeps it`, { retryable: false, reason: 'unroutable' }) }
    }
    if (result instanceof BrokerError) return { ok: false, error: result }
    if (result instanceof RangeError) return { ok: false, error: new BrokerError(result.message, { retryable: false, reason: 'malformed', cause: result }) }
    const closed = /closed/i.test(result.message)
    return { ok: false, error: new BrokerError(closed ? `channel closed before the confirm: ${result.message}` : `RabbitMQ nacked the event: ${result.message}`, { retryable: true, reason: closed ? 'connection_lost' : 'nack', cause: result }) }
  }

  async health (): Promise<BrokerHealth> {
    const down = this.#unavailable()
    return down === undefined ? { up: true } : { up: false, detail: down.message }
  }

  async unroutedCount (): Promise<number | undefined> {
    const ae = this.#alternateExchange
    if (this.#model === undefined || ae === undefined || this.#channels.length === 0) return undefined
    // A channel of its own: a failed check closes the channel it runs on.
    const ch = await this.#model.createChannel().catch(() => undefined)
    if (ch === undefined) return undefined
    try {
      return (await ch.checkQueue(ae)).messageCount
    } catch {
      return undefined
    } finally {
      await ch.close().catch(() => undefined)
    }
  }

  async close (): Promise<void> {
    this.#closing = true
    await Promise.all(this.#channels.map(ch => ch.waitForConfirms().catch(() => undefined)))
    await this.#conn?.close().catch(() => undefined)
    this.#channels = []
  }
}
