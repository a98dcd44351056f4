import { asError } from '../../errors.js'
import type { Broker, BrokerHealth, OutgoingEvent, PublishOutcome } from '../broker.js'
import { BrokerError, tracestateOf } from '../broker.js'
import { classifyKafkaError } from './errors.js'
import type { KafkaHeader, KafkaProducer } from './producer.js'

export interface KafkaOptions {
  /** The topic template as written (for messages); each event's own topic is in its message. */
  topic: string
  /** How long `close()` gives queued records to go out. */
  closeTimeoutMs: number
}

const OK: PublishOutcome = Object.freeze({ ok: true })
/** How many delivered records, and for how long, a destination remembers against a second attempt. */
const REMEMBERED = 100_000
const REMEMBERED_MS = 10 * 60_000
/** librdkafka's message.max.bytes (its default), less room for the record's own framing. */
const MAX_RECORD_BYTES = 1_000_000 - 512

/** The record headers every record carries when its destination declares none (docs/envelopes.md). */
function defaultHeaders (outgoing: OutgoingEvent): KafkaHeader[] {
  const { event, traceparent } = outgoing
  const tracestate = tracestateOf(outgoing)
  const headers: KafkaHeader[] = [
    { 'x-event-type': event.type },
    { 'x-tenant-id': event.tenantId },
    { 'x-correlation-id': event.correlationId }
  ]
  if (event.userId !== undefined) headers.push({ 'x-user-id': event.userId })
  if (event.accountId !== undefined) headers.push({ 'x-account-id': event.accountId })
  if (traceparent !== undefined) headers.push({ traceparent })
  if (tracestate !== undefined) headers.push({ tracestate })
  return headers
}

function headersOf (outgoing: OutgoingEvent): KafkaHeader[] {
  const declared = outgoing.message?.headers
  if (declared === undefined) return defaultHeaders(outgoing)
  return Object.entries(declared).map(([name, value]) => ({ [name]: String(value) }))
}

/**
 * One Kafka destination on a (shared) idempotent producer: each event is a record on the topic
 * its message names, keyed as the destination declares, its envelope as the value; 202 only on
 * the delivery report (acks=all). librdkafka batches what is produced together per partition and
 * retries leader changes itself, without duplicates.
 */
export class KafkaBroker implements Broker {
  readonly name = 'kafka'
  readonly #producer: KafkaProducer
  readonly #opts: KafkaOptions
  /**
   * Records librdkafka still holds (sent or queued, no delivery report yet), by event id and topic.
   * Publishing one again (the relay's next attempt, a repeated Idempotency-Key) waits for that
   * record's report instead of producing a second record: delivery gives up on a call at its
   * deadline, librdkafka keeps trying the record itself, without duplicates.
   */
  readonly #inflight = new Map<string, Promise<PublishOutcome>>()
  /**
   * Records delivered lately, by event id and topic, oldest first: a call that delivery gave up on
   * (its deadline passed while librdkafka waited for the cluster) may still end in a delivered
   * record, and the relay's next attempt must not write a second one. Bounded in count and age.
   */
  readonly #delivered = new Map<string, number>()

  constructor (producer: KafkaProducer, opts: KafkaOptions) {
    this.#producer = producer
    this.#opts = opts
  }

  connect (): Promise<void> {
    return this.#producer.connect()
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const down = this.#producer.unavailable()
    if (down !== undefined) return events.map(() => ({ ok: false, error: down }))
    return Promise.all(events.map(outgoing => this.#publishOne(outgoing)))
  }

  #publishOne (outgoing: OutgoingEvent): Promise<PublishOutcome> {
    const topic = outgoing.message?.topic ?? this.#opts.topic
    const id = `${outgoing.event.id}\0${topic}`
    const pending = this.#inflight.get(id)
    if (pending !== undefined) return pending
    if (this.#wasDelivered(id)) return Promise.resolve(OK)
    let settled!: (outcome: PublishOutcome) => void
    const outcome = new Promise<PublishOutcome>(resolve => { settled = resolve })
    this.#inflight.set(id, outcome)
    const settle = (result: PublishOutcome) => {
      this.#inflight.delete(id)
      if (result.ok) this.#remember(id)
      settled(result)
    }
    try {
      const { event, body, message } = outgoing
      this.#producer.produce(topic, Buffer.from(body), message?.key ?? null, Date.parse(event.time), headersOf(outgoing), err => {
        settle(err === null ? OK : { ok: false, error: classifyKafkaError(err, topic) })
      })
    } catch (err) {
      // Refused before it left: too large, the local queue full, an invalid topic.
      const error = asError(err)
      settle({ ok: false, error: error instanceof BrokerError ? error : classifyKafkaError(error, topic) })
    }
    return outcome
  }

  #remember (id: string): void {
    const delivered = this.#delivered
    delivered.set(id, Date.now())
    if (delivered.size > REMEMBERED) delivered.delete(delivered.keys().next().value as string)
  }

  #wasDelivered (id: string): boolean {
    const at = this.#delivered.get(id)
    return at !== undefined && Date.now() - at < REMEMBERED_MS
  }

  /** A record librdkafka would refuse for its size (message.max.bytes): refused before a spooled destination queues it. */
  refusal (outgoing: OutgoingEvent): BrokerError | undefined {
    const topic = outgoing.message?.topic ?? this.#opts.topic
    if (topic === '.' || topic === '..') {
      return new BrokerError(`Kafka: '${topic}' is not a topic name Kafka takes`, { retryable: false, reason: 'invalid_topic' })
    }
    let size = Buffer.byteLength(outgoing.body) + Buffer.byteLength(outgoing.message?.key ?? '')
    for (const header of headersOf(outgoing)) for (const [name, value] of Object.entries(header)) size += name.length + value.length
    if (size <= MAX_RECORD_BYTES) return undefined
    return new BrokerError(`Kafka: the record is ${size} bytes, over the ${MAX_RECORD_BYTES} a producer sends (message.max.bytes)`, {
      retryable: false, reason: 'too_large', tooLarge: true
    })
  }

  async health (): Promise<BrokerHealth> {
    // A metadata request: up while some broker answers it.
    if (await this.#producer.probe()) return { up: true }
    return { up: false, detail: this.#producer.unavailable()?.message ?? 'no broker answered' }
  }

  async close (): Promise<void> {
    await this.#producer.release(this.#opts.closeTimeoutMs)
  }
}
