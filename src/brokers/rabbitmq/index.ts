import type { ChannelModel } from 'amqplib'
import type { FastifyBaseLogger } from 'fastify'
import { BrokerError, type Broker, type BrokerHealth, type OutgoingEvent, type PublishOutcome } from '../broker.js'
import { RETURNED, type AmqpConnection } from './connection.js'
import { declareTopology } from './topology.js'

export interface RabbitMqOptions {
  exchange: string
  alternateExchange?: string
  /** AMQP appId: who publishes. */
  appId: string
  log: FastifyBaseLogger
}

/**
 * One exchange on a (shared) RabbitMQ connection: persistent, mandatory publishes on a confirm
 * channel to a durable topic exchange. A 202 is given only on the broker's confirm.
 */
export class RabbitMqBroker implements Broker {
  readonly name = 'rabbitmq'
  readonly #opts: RabbitMqOptions
  readonly #conn: AmqpConnection
  /** The alternate exchange in force (the exchange may exist without ours). */
  #alternateExchange: string | undefined

  constructor (conn: AmqpConnection, opts: RabbitMqOptions) {
    this.#conn = conn
    this.#opts = opts
    conn.use(model => this.#declare(model))
  }

  async #declare (model: ChannelModel): Promise<void> {
    const topology = await declareTopology(model, { exchange: this.#opts.exchange, ...(this.#opts.alternateExchange === undefined ? {} : { alternateExchange: this.#opts.alternateExchange }) })
    if (topology.warning !== undefined) this.#opts.log.warn({ broker: this.name, exchange: this.#opts.exchange }, topology.warning)
    this.#alternateExchange = topology.alternateExchange
  }

  connect (): Promise<void> {
    return this.#conn.connect()
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const down = this.#conn.unavailable()
    if (down !== undefined) return events.map(() => ({ ok: false, error: down }))
    return Promise.all(events.map(e => this.#publishOne(e)))
  }

  async #publishOne ({ event, body, contentType }: OutgoingEvent): Promise<PublishOutcome> {
    const headers: Record<string, string> = { 'x-event-type': event.type, 'x-tenant-id': event.tenantId, 'x-correlation-id': event.correlationId }
    if (event.userId !== undefined) headers['x-user-id'] = event.userId
    if (event.accountId !== undefined) headers['x-account-id'] = event.accountId
    if (event.traceparent !== undefined) headers.traceparent = event.traceparent
    const result = await this.#conn.publish(this.#opts.exchange, event.routingKey, Buffer.from(body), {
      persistent: true,
      mandatory: true,
      contentType,
      messageId: event.id,
      correlationId: event.correlationId,
      timestamp: Math.floor(Date.parse(event.time) / 1000),
      type: event.type,
      appId: this.#opts.appId,
      headers
    })
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
    const down = this.#conn.unavailable()
    return down === undefined ? { up: true } : { up: false, detail: down.message }
  }

  async unroutedCount (): Promise<number | undefined> {
    const ae = this.#alternateExchange
    return ae === undefined ? undefined : this.#conn.queueDepth(ae)
  }

  close (): Promise<void> {
    return this.#conn.release()
  }
}
