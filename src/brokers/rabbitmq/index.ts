import type { ChannelModel, ConfirmChannel, Message } from 'amqplib'
import type { FastifyBaseLogger } from 'fastify'
import { BrokerError, routingKeyOf, type Broker, type BrokerHealth, type OutgoingEvent, type PublishOutcome } from '../broker.js'
import type { AmqpConnection, ConnectionUser } from './connection.js'
import { outcomeOf, PublishOptions, RETURNED, type ConfirmResult } from './message.js'
import { declareTopology } from './topology.js'

export interface RabbitMqOptions {
  exchange: string
  alternateExchange?: string
  /** AMQP appId: who publishes. */
  appId: string
  log: FastifyBaseLogger
}

/** How soon a destination tries again to declare its exchange or reopen its channel. */
const RETRY_MS = [250, 500, 1000, 2000, 5000]

/**
 * One exchange on a (shared) RabbitMQ connection, with a confirm channel of its own: persistent,
 * mandatory publishes to a durable topic exchange, 202 only on the broker's confirm. A channel
 * the broker closes (say, the exchange was deleted) or a declaration it refuses affects this
 * destination alone; it is retried with backoff while the connection stays up.
 */
export class RabbitMqBroker implements Broker, ConnectionUser {
  readonly name = 'rabbitmq'
  readonly #opts: RabbitMqOptions
  readonly #conn: AmqpConnection
  #channel: ConfirmChannel | undefined
  /** Why the exchange or channel could not be set up on the current connection. */
  #setupError: string | undefined
  /** The alternate exchange in force (the exchange may exist without ours). */
  #alternateExchange: string | undefined
  /** messageIds returned as unroutable on the current channel; their confirm comes after the return. */
  #returned = new Map<string, number>()
  #retry: NodeJS.Timeout | undefined
  #attempt = 0
  #closed = false
  /** Every message's AMQP properties, refilled per message (message.ts says why). */
  readonly #publishOptions: PublishOptions

  constructor (conn: AmqpConnection, opts: RabbitMqOptions) {
    this.#conn = conn
    this.#opts = opts
    this.#publishOptions = new PublishOptions(opts.appId)
    conn.use(this)
  }

  async attach (model: ChannelModel): Promise<void> {
    clearTimeout(this.#retry)
    const log = this.#opts.log
    try {
      const topology = await declareTopology(model, { exchange: this.#opts.exchange, ...(this.#opts.alternateExchange === undefined ? {} : { alternateExchange: this.#opts.alternateExchange }) })
      if (topology.warning !== undefined) log.warn({ broker: this.name, exchange: this.#opts.exchange }, topology.warning)
      this.#alternateExchange = topology.alternateExchange
      const ch = await model.createConfirmChannel()
      this.#returned = new Map()
      ch.on('return', (msg: Message) => {
        const id = msg.properties.messageId as string | undefined
        if (id !== undefined) this.#returned.set(id, (this.#returned.get(id) ?? 0) + 1)
      })
      ch.on('error', (err: Error) => log.warn({ broker: this.name, exchange: this.#opts.exchange, err: err.message }, 'RabbitMQ channel error'))
      ch.on('close', () => {
        if (this.#channel !== ch) return
        this.#channel = undefined
        this.#setupError = 'the channel was closed by the broker'
        this.#retryLater()
      })
      this.#channel = ch
      this.#setupError = undefined
      this.#attempt = 0
    } catch (err) {
      this.#channel = undefined
      this.#setupError = (err as Error).message
      log.error({ broker: this.name, exchange: this.#opts.exchange, err: (err as Error).message }, 'RabbitMQ: cannot set up the exchange; retrying')
      this.#retryLater()
    }
  }

  detach (): void {
    clearTimeout(this.#retry)
    this.#channel = undefined
    this.#setupError = undefined
  }

  #retryLater (): void {
    if (this.#closed) return
    const delay = RETRY_MS[Math.min(this.#attempt++, RETRY_MS.length - 1)] as number
    clearTimeout(this.#retry)
    this.#retry = setTimeout(() => {
      const model = this.#conn.model
      if (model !== undefined && this.#channel === undefined) void this.attach(model)
    }, delay).unref()
  }

  connect (): Promise<void> {
    return this.#conn.connect()
  }

  #unavailable (): BrokerError | undefined {
    const down = this.#conn.unavailable()
    if (down !== undefined) return down
    if (this.#channel === undefined) {
      return new BrokerError(`exchange '${this.#opts.exchange}' cannot be used yet: ${this.#setupError ?? 'no channel'}`, { retryable: true, reason: 'topology', down: true })
    }
    return undefined
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const down = this.#unavailable()
    if (down !== undefined) return events.map(() => ({ ok: false, error: down }))
    const ch = this.#channel as ConfirmChannel
    // One promise for the whole call, settled when the last confirm is in (or when the broker
    // blocks publishers): no promise, closure or await per event.
    const results: (ConfirmResult | BrokerError | undefined)[] = new Array(events.length)
    let pending = events.length
    let done!: () => void
    const confirmed = new Promise<void>(resolve => { done = resolve })
    const inflight = this.#conn.inflight
    const settle = (i: number, result: ConfirmResult | BrokerError) => {
      if (results[i] !== undefined) return
      results[i] = result
      if (--pending === 0) {
        inflight.delete(blocked)
        done()
      }
    }
    const blocked = (error: BrokerError) => {
      for (let i = 0; i < results.length; i++) settle(i, error)
    }
    inflight.add(blocked)
    let writable = true
    for (let i = 0; i < events.length; i++) {
      try {
        writable = this.#publishOne(ch, events[i] as OutgoingEvent, i, settle) && writable
      } catch (err) {
        settle(i, err as Error)
      }
    }
    // Respect the socket's back-pressure rather than buffer without bound; a channel that closes
    // meanwhile settles the confirms, which ends the wait.
    if (!writable && pending > 0) await Promise.race([new Promise(resolve => ch.once('drain', resolve)), confirmed])
    if (pending > 0) await confirmed
    return results.map((result, i) => outcomeOf(result as ConfirmResult | BrokerError, events[i] as OutgoingEvent))
  }

  /** Writes one message; `settle(i, …)` gets its confirm. Returns what ch.publish returns (false: the socket is full). */
  #publishOne (ch: ConfirmChannel, outgoing: OutgoingEvent, i: number, settle: (i: number, result: ConfirmResult) => void): boolean {
    const id = outgoing.event.id
    return ch.publish(this.#opts.exchange, routingKeyOf(outgoing), Buffer.from(outgoing.body), this.#publishOptions.for(outgoing), (err: Error | null) => {
      // RabbitMQ sends basic.return before the confirm of the same message.
      const returned = this.#returned.get(id) ?? 0
      if (returned > 0) {
        if (returned === 1) this.#returned.delete(id)
        else this.#returned.set(id, returned - 1)
      }
      settle(i, err === null && returned > 0 ? RETURNED : err)
    })
  }

  async health (): Promise<BrokerHealth> {
    const down = this.#unavailable()
    return down === undefined ? { up: true } : { up: false, detail: down.message }
  }

  async unroutedCount (): Promise<number | undefined> {
    const ae = this.#alternateExchange
    const model = this.#conn.model
    if (ae === undefined || model === undefined || this.#channel === undefined) return undefined
    // A channel of its own: a failed check closes the channel it runs on.
    const ch = await model.createChannel().catch(() => undefined)
    if (ch === undefined) return undefined
    ch.on('error', () => {})
    try {
      return (await ch.checkQueue(ae)).messageCount
    } catch {
      return undefined
    } finally {
      await ch.close().catch(() => undefined)
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    await this.#channel?.waitForConfirms().catch(() => undefined)
    this.#channel = undefined
    await this.#conn.release(this)
  }
}
