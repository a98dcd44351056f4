import { ROOT_CONTEXT, type Context, type Tracer } from '@opentelemetry/api'
import type { Broker, OutgoingEvent } from '../brokers/broker.js'
import type { Messaging } from '../brokers/index.js'
import { protectedEvent, type WireFormat } from '../envelopes/index.js'
import { GatewayError, type FieldError } from '../errors.js'
import type { GatewayEvent } from '../envelopes/event.js'
import { toTraceparent } from '../observability/trace-context.js'
import { endProducerSpan, startProducerSpan } from './producer-span.js'
import type { DeliveryResult } from './publisher.js'
import { zip } from './zip.js'

/** How an event reaches a destination: its sync delivery, or its outbox (spool mode). */
export interface Delivery {
  publish (events: readonly OutgoingEvent[]): Promise<DeliveryResult[]>
}

/** A destination as delivery sees it: its broker, its retries, and the envelope its consumers read. */
export interface Destination {
  name: string
  broker: Broker
  /** sync: taken when its broker has the event; spool: when its outbox has it. */
  mode: 'sync' | 'spool'
  delivery: Delivery
  /** What its consumers read of each type routed to it. */
  formats: ReadonlyMap<string, WireFormat>
  /** The envelope's profile name, or `template`, for logs. */
  envelope: string
  /** What its spans say it is. */
  messaging: Messaging
}

interface Failure { destination: Destination, error: GatewayError }
/** One event of a fan-out: its place in the list, the destinations that have it and those that failed. */
interface Fate { event: GatewayEvent, i: number, delivered: string[], failed: [Failure, ...Failure[]] | undefined }

export type FanOutResult =
  | { ok: true, delivered: string[] }
  /** `delivered`: the destinations that have the event all the same. */
  | { ok: false, error: GatewayError, delivered: string[] }

/**
 * Sends each event to every destination its type is routed to, all destinations at once, each
 * with its own retries and deadline. An event is published only when every one of them has it;
 * destinations that already had it (a repeat of a partly delivered request) are not sent again.
 */
export class FanOut {
  readonly destinations: readonly Destination[]
  readonly #byType = new Map<string, Destination[]>()
  readonly #spooled = new Set<string>()
  /** Per type, the wire formats that must see an event before it is accepted (what the start could not prove). */
  readonly #checks = new Map<string, { destination: string, check: NonNullable<WireFormat['check']>, format: WireFormat }[]>()
  readonly #tracer: Tracer | undefined

  /** `tracer`: absent when tracing is off; messages then carry the caller's traceparent as it came. */
  constructor (destinations: readonly Destination[], routes: ReadonlyMap<string, readonly string[]>, tracer?: Tracer) {
    this.destinations = destinations
    this.#tracer = tracer
    const byName = new Map(destinations.map(t => [t.name, t]))
    for (const [type, names] of routes) {
      this.#byType.set(type, names.map(n => {
        const destination = byName.get(n)
        if (destination === undefined) throw new Error(`route for ${type} names no destination '${n}'`)
        if (destination.mode === 'spool') this.#spooled.add(type)
        const format = destination.formats.get(type)
        const check = format?.check
        if (format !== undefined && check !== undefined) {
          this.#checks.set(type, [...this.#checks.get(type) ?? [], { destination: destination.name, check, format }])
        }
        return destination
      }))
    }
  }

  /**
   * Field errors for an event whose message some destination's broker would refuse (a routing key
   * too long in bytes, an SQS id with characters it cannot hold): answered 400 before it is taken.
   * Only what the start could not prove is checked.
   */
  fieldErrors (event: GatewayEvent, prefix = ''): FieldError[] | undefined {
    const checks = this.#checks.get(event.type)
    if (checks === undefined) return undefined
    let errors: FieldError[] | undefined
    for (const { destination, check, format } of checks) {
      // Message fields are made from the protected event: checked as they will be sent.
      for (const e of check(protectedEvent(format, event, false)) ?? []) {
        (errors ??= []).push({
          path: `${prefix}${e.path === '/' ? '' : e.path}` || '/',
          message: `${e.message} at destination ${destination}`
        })
      }
    }
    return errors
  }

  destinationsOf (type: string): readonly Destination[] {
    return this.#byType.get(type) ?? []
  }

  /** Whether some destination of the type is spooled: its accepted events are `queued`, not `published`. */
  spooled (type: string): boolean {
    return this.#spooled.has(type)
  }

  /** `parent`: the context the producer spans start in (the request's server span). */
  async publish (
    events: readonly GatewayEvent[],
    already: readonly (ReadonlySet<string> | undefined)[] = [],
    parent: Context = ROOT_CONTEXT
  ): Promise<FanOutResult[]> {
    // Per event, what became of it; per destination, the events it gets (with their place here).
    const fates: Fate[] = events.map((event, i) => ({ event, i, delivered: [...(already[i] ?? [])], failed: undefined }))
    const perDestination = new Map<Destination, Fate[]>()
    for (const fate of fates) {
      for (const destination of this.destinationsOf(fate.event.type)) {
        if (already[fate.i]?.has(destination.name) === true) continue
        const list = perDestination.get(destination)
        if (list === undefined) perDestination.set(destination, [fate])
        else list.push(fate)
      }
    }
    // Destinations with one compiled format (a profile with the same source and module) share the
    // serialized envelope, unless it carries each message's own trace context. With one
    // destination (the usual case) nothing is shared: no cache.
    const encoded = perDestination.size > 1 ? events.map(() => new Map<WireFormat['encode'], string>()) : undefined
    const encode = (destination: Destination, { event: raw, i }: Fate, producer: string | undefined): OutgoingEvent => {
      const traceparent = producer ?? raw.traceparent
      const format = destination.formats.get(raw.type)
      if (format === undefined) throw new Error(`${destination.name} has no wire format for ${raw.type}`)
      // What this destination gets, protected: its envelope, its message fields, and what its
      // outbox or store keeps of the event. Never shared with another destination.
      const event = protectedEvent(format, raw)
      const message = format.message?.(event, traceparent)
      const cache = format.protection === undefined ? encoded?.[i] : undefined
      let body = cache === undefined || format.usesTraceparent ? undefined : cache.get(format.encode)
      if (body === undefined) {
        body = format.encode(event, traceparent)
        if (cache !== undefined && !format.usesTraceparent) cache.set(format.encode, body)
      }
      return { event, body, contentType: format.contentType, traceparent, ...(message === undefined ? {} : { message }) }
    }
    const tracer = this.#tracer
    await Promise.all([...perDestination].map(async ([destination, its]) => {
      // Each destination's messages carry its own producer span, so that a consumer's span is
      // that span's child, whichever destination it reads.
      const span = tracer === undefined ? undefined : startProducerSpan(tracer, destination, its.map(f => f.event), parent)
      const producer = span === undefined ? undefined : toTraceparent(span.spanContext())
      // A destination that throws (a bug, an encoder fault) fails its own events, not the others'.
      let results: DeliveryResult[]
      try {
        results = zip(its, await destination.delivery.publish(its.map(f => encode(destination, f, producer)))).map(([, result]) => result)
      } catch (err) {
        const error = new GatewayError('EVG_BROKER_UNAVAILABLE', `${destination.name} could not take the event (error)`, {
          retryAfter: 1, extensions: { reason: 'error' }, cause: err
        })
        results = its.map(() => ({ ok: false as const, error }))
      }
      if (span !== undefined) endProducerSpan(span, results)
      for (const [fate, result] of zip(its, results)) {
        if (result.ok) fate.delivered.push(destination.name)
        else if (fate.failed === undefined) fate.failed = [{ destination, error: result.error }]
        else fate.failed.push({ destination, error: result.error })
      }
    }))
    return fates.map(({ delivered, failed }) => failed === undefined
      ? { ok: true, delivered }
      : { ok: false, error: combine(failed, delivered), delivered })
  }
}

/**
 * One answer for an event some destinations did not take: a refusal for good wins over "try
 * later" (a repeat cannot complete it), and the problem names every destination that failed.
 */
function combine (failures: [Failure, ...Failure[]], delivered: string[]): GatewayError {
  const first = failures.find(f => !f.error.retryable) ?? failures[0]
  // Retry-After only on an answer that says "try later".
  const retryAfter = first.error.retryable ? Math.max(0, ...failures.map(f => f.error.retryAfter ?? 0)) : 0
  const names = failures.map(f => f.destination.name)
  const detail = failures.length === 1 && delivered.length === 0
    ? first.error.message
    : `not delivered to ${names.join(', ')}: ${first.error.message}`
  return new GatewayError(first.error.code, detail, {
    ...(retryAfter > 0 ? { retryAfter } : {}),
    extensions: {
      ...first.error.extensions,
      destinations: failures.map(f => ({
        name: f.destination.name,
        code: f.error.code,
        ...(typeof f.error.extensions.reason === 'string' ? { reason: f.error.extensions.reason } : {})
      })),
      delivered
    }
  })
}
