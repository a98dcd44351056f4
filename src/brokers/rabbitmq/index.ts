import type { ChannelModel, ConfirmChannel, Message } from 'amqplib'
import type { FastifyBaseLogger } from 'fastify'
import { asError, messageOf } from '../../errors.js'
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

/** How soon a destination tries again to declare its exchange or reopen its channel; then every MAX_RETRY_MS. */
const RETRY_MS = [250, 500, 1000, 2000]
const MAX_RETRY_MS = 5000

/**
 * One exchange on a (shared) RabbitMQ connection, with a confirm channel of its own: persistent,
 * mandatory publishes to a durable topic exchange, 202 only on the broker's confirm. A channel
 * the broker closes (say, the exchange was deleted) or a declaration it refuses affects this
 * destination alone; it is retried with backoff while the connection stays up.
 */
/** How long closing waits for the confirms still due (an unresponsive broker sends none). */
const CLOSE_CONFIRMS_MS = 2000 // RABBITMQ_CLOSE_MS in connection.ts counts it

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
      const { exchange, alternateExchange } = this.#opts
      const topology = await declareTopology(model, { exchange, ...(alternateExchange === undefined ? {} : { alternateExchange }) })
      if (topology.warning !== undefined) log.warn({ broker: this.name, exchange: this.#opts.exchange }, topology.warning)
      this.#alternateExchange = topology.alternateExchange
      const ch = await model.createConfirmChannel()
      this.#returned = new Map()
      ch.on('return', (msg: Message) => {
        const id: unknown = msg.properties.messageId
        if (typeof id === 'string') this.#returned.set(id, (this.#returned.get(id) ?? 0) + 1)
      })
      ch.on('error', (err: Error) => {
        log.warn({ broker: this.name, exchange: this.#opts.exchange, err: err.message }, 'RabbitMQ channel error')
      })
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
      this.#setupError = messageOf(err)
      log.error({ broker: this.name, exchange: this.#opts.exchange, err: messageOf(err) }, 'RabbitMQ: cannot set up the exchange; retrying')
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
    const delay = RETRY_MS[this.#attempt++] ?? MAX_RETRY_MS
    clearTimeout(this.#retry)
    this.#retry = setTimeout(() => {
      const model = this.#conn.model
      if (model !== undefined && this.#channel === undefined) void this.attach(model)
    }, delay).unref()
  }

  connect (): Promise<void> {
    return this.#conn.connect()
  }

  /** The channel to publish on, or why there is none now. */
  #usable (): ConfirmChannel | BrokerError {
    const down = this.#conn.unavailable()
    if (down !== undefined) return down
    return this.#channel ?? new BrokerError(`exchange '${this.#opts.exchange}' cannot be used yet: ${this.#setupError ?? 'no channel'}`, {
      retryable: true,
      reason: 'topology',
      down: true
    })
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const ch = this.#usable()
    if (ch instanceof BrokerError) return events.map(() => ({ ok: false, error: ch }))
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
    let i = 0
    for (const outgoing of events) {
      try {
        writable = this.#publishOne(ch, outgoing, i, settle) && writable
      } catch (err) {
        settle(i, asError(err))
      }
      i++
    }
    // Respect the socket's back-pressure rather than buffer without bound; a channel that closes
    // meanwhile settles the confirms, which ends the wait.
    if (!writable && pending > 0) await Promise.race([new Promise(resolve => ch.once('drain', resolve)), confirmed])
    if (pending > 0) await confirmed
    // Every slot is settled by now (pending is 0).
    return events.map((outgoing, i) => outcomeOf(results[i] as ConfirmResult | BrokerError, outgoing))
  }

  /** Writes one message; `settle(i, …)` gets its confirm. Returns what ch.publish returns (false: the socket is full). */
  #publishOne (ch: ConfirmChannel, outgoing: OutgoingEvent, i: number, settle: (i: number, result: ConfirmResult) => void): boolean {
    const id = outgoing.event.id
    const options = this.#publishOptions.for(outgoing)
    return ch.publish(this.#opts.exchange, routingKeyOf(outgoing), Buffer.from(outgoing.body), options, (err: Error | null) => {
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
    const usable = this.#usable()
    return usable instanceof BrokerError ? { up: false, detail: usable.message } : { up: true }
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
    // Bounded: an unresponsive broker's confirms never come, and shutdown must still close the rest.
    const confirmed = this.#channel?.waitForConfirms().catch(() => undefined)
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, CLOSE_CONFIRMS_MS)
      void Promise.resolve(confirmed).then(() => { clearTimeout(timer); resolve() })
    })
    this.#channel = undefined
    await this.#conn.release(this)
  }
}
