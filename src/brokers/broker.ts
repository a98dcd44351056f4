import type { WireMessage } from '../envelopes/index.js'
import type { GatewayEvent } from '../envelopes/event.js'

/** One event on its way to one destination, its envelope serialized once. */
export interface OutgoingEvent {
  /** Ids, context and keys, for the broker's own headers and attributes. */
  event: GatewayEvent
  /** The envelope, in the destination's wire format, as JSON: what the broker stores or sends. */
  body: string
  /**
   * The message fields the destination declares (routing key, group id, headers, ...); the
   * broker's defaults for the rest.
   */
  message?: WireMessage
  /** Of the body (AMQP content-type). */
  contentType: string
  /**
   * The W3C trace context this message carries (AMQP header, SQS attribute, EventBridge
   * TraceHeader): the destination's own producer span when tracing is on, else the caller's
   * `traceparent` as it came. Not `event.traceparent`, which stays the caller's.
   */
  traceparent?: string
}

/** The tracestate a message carries: the caller's, beside a traceparent (W3C: never one without the other). */
export function tracestateOf (outgoing: OutgoingEvent): string | undefined {
  return outgoing.traceparent === undefined ? undefined : outgoing.event.tracestate
}

/** The routing key a message goes out with: the destination's declared one, else the catalog's. */
export function routingKeyOf (outgoing: OutgoingEvent): string {
  return outgoing.message?.routingKey ?? outgoing.event.routingKey
}

/** A broker's failure, classified by the adapter: can the same publish succeed later? */
export class BrokerError extends Error {
  readonly retryable: boolean
  /** Short machine-readable reason, e.g. `timeout`, `disk_full`, `access_denied`. */
  readonly reason: string
  /**
   * The broker is known to be unusable right now (disconnected, blocked by an alarm): trying
   * again within this request is pointless, so delivery answers 503 at once.
   */
  readonly down: boolean
  /** Set when the event itself is too large for the broker: answered 413, not 502. */
  readonly tooLarge: boolean
  /**
   * The broker answered about this event and said "not now" (a nack, a failed batch entry, a
   * throttle): the outbox counts it as an attempt and moves the event behind later ones. Unset for
   * what is no answer at all (a timeout, a lost connection): that counts nothing and reorders nothing.
   */
  readonly answered: boolean

  constructor (
    message: string,
    options: { retryable: boolean, reason: string, down?: boolean, tooLarge?: boolean, answered?: boolean, cause?: unknown }
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BrokerError'
    this.retryable = options.retryable
    this.reason = options.reason
    this.down = options.down ?? false
    this.tooLarge = options.tooLarge ?? false
    this.answered = options.answered ?? false
  }
}

export type PublishOutcome = { ok: true } | { ok: false, error: BrokerError }

export interface BrokerHealth {
  up: boolean
  detail?: string
}

/**
 * What every broker adapter implements. `publish` makes one attempt and answers per event, in
 * order; retries, deadlines, metrics and logs belong to delivery. `deadline` (epoch ms) is when
 * delivery stops waiting: an adapter that holds events before sending them (AWS calls gathering
 * company) never sends one after it.
 */
export interface Broker {
  readonly name: string
  connect (): Promise<void>
  publish (events: readonly OutgoingEvent[], deadline?: number): Promise<PublishOutcome[]>
  health (): Promise<BrokerHealth>
  close (): Promise<void>
  /**
   * Why the broker would refuse this event for good, when that is known before sending (an SQS
   * message or EventBridge entry over its size limit): a spooled destination refuses it at once
   * rather than queue a dead letter.
   */
  refusal? (event: OutgoingEvent): BrokerError | undefined
  /** Events the broker kept aside as unroutable (e.g. in RabbitMQ's alternate exchange queue). */
  unroutedCount? (): Promise<number | undefined>
}

export interface ReadQuery {
  tenantId: string
  type?: string
  /** Only these types (an API key's scope); none when empty. */
  types?: readonly string[]
  after?: number
  limit: number
}

export interface ReadPage {
  /** Stored envelopes as JSON text, oldest first. */
  events: string[]
  /** Cursor for the next page: the position of the last event returned (or `after`). */
  next: number
}

/** Brokers that can give events back (the embedded local store). */
export interface EventReader {
  read (query: ReadQuery): ReadPage
}

export function isEventReader (broker: Broker): broker is Broker & EventReader {
  return 'read' in broker && typeof broker.read === 'function'
}
