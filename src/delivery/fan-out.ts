import { ROOT_CONTEXT, type Context, type Tracer } from '@opentelemetry/api'
import type { Broker, OutgoingEvent } from '../brokers/broker.js'
import type { Messaging } from '../brokers/index.js'
import type { EnvelopeOptions, EnvelopeProfile } from '../envelopes/index.js'
import { GatewayError } from '../errors.js'
import type { GatewayEvent } from '../event.js'
import { toTraceparent } from '../trace-context.js'
import { endProducerSpan, startProducerSpan } from './producer-span.js'
import type { DeliveryResult } from './publisher.js'

/** How an event reaches a destination: its sync delivery, or its outbox (spool mode). */
export interface Deliverer {
  publish (events: readonly OutgoingEvent[]): Promise<DeliveryResult[]>
}

/** A destination as delivery sees it: its broker, its retries, and the envelope its consumers read. */
export interface Target {
  name: string
  broker: Broker
  /** sync: taken when its broker has the event; spool: when its outbox has it. */
  mode: 'sync' | 'spool'
  delivery: Deliverer
  profile: EnvelopeProfile
  envelope: EnvelopeOptions
  /** What its spans say it is. */
  messaging: Messaging
}

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
  readonly targets: readonly Target[]
  readonly #byType = new Map<string, Target[]>()
  readonly #spooled = new Set<string>()
  readonly #tracer: Tracer | undefined

  /** `tracer`: absent when tracing is off; messages then carry the caller's traceparent as it came. */
  constructor (targets: readonly Target[], routes: ReadonlyMap<string, readonly string[]>, tracer?: Tracer) {
    this.targets = targets
    this.#tracer = tracer
    const byName = new Map(targets.map(t => [t.name, t]))
    for (const [type, names] of routes) {
      this.#byType.set(type, names.map(n => {
        const target = byName.get(n)
        if (target === undefined) throw new Error(`route for ${type} names no destination '${n}'`)
        if (target.mode === 'spool') this.#spooled.add(type)
        return target
      }))
    }
  }

  targetsOf (type: string): readonly Target[] {
    return this.#byType.get(type) ?? []
  }

  /** Whether some destination of the type is spooled: its accepted events are `queued`, not `published`. */
  spooled (type: string): boolean {
    return this.#spooled.has(type)
  }

  /** `parent`: the context the producer spans start in (the request's server span). */
  async publish (events: readonly GatewayEvent[], already: readonly (ReadonlySet<string> | undefined)[] = [], parent: Context = ROOT_CONTEXT): Promise<FanOutResult[]> {
    const perTarget = new Map<Target, number[]>()
    events.forEach((event, i) => {
      for (const target of this.targetsOf(event.type)) {
        if (already[i]?.has(target.name) === true) continue
        const list = perTarget.get(target)
        if (list === undefined) perTarget.set(target, [i])
        else list.push(i)
      }
    })
    const delivered: string[][] = events.map((_, i) => [...(already[i] ?? [])])
    const failed: ({ target: Target, error: GatewayError }[] | undefined)[] = new Array(events.length)
    // Destinations sharing a profile, its options and the trace context share the serialized
    // envelope. With one destination (the usual case) nothing is shared: no cache.
    const encoded = perTarget.size > 1 ? events.map(() => new Map<string, string>()) : undefined
    const encode = (target: Target, i: number, producer: string | undefined): OutgoingEvent => {
      const event = events[i] as GatewayEvent
      const traceparent = producer ?? event.traceparent
      if (encoded === undefined) return { event, body: target.profile.encode(event, target.envelope, traceparent), contentType: target.profile.contentType, traceparent }
      const key = `${target.profile.name}\0${target.envelope.source}\0${target.envelope.module ?? ''}\0${traceparent ?? ''}`
      const cache = encoded[i] as Map<string, string>
      let body = cache.get(key)
      if (body === undefined) {
        body = target.profile.encode(event, target.envelope, traceparent)
        cache.set(key, body)
      }
      return { event, body, contentType: target.profile.contentType, traceparent }
    }
    const tracer = this.#tracer
    await Promise.all([...perTarget].map(async ([target, indexes]) => {
      // Each destination's messages carry its own producer span, so that a consumer's span is
      // that span's child, whichever destination it reads.
      const span = tracer === undefined ? undefined : startProducerSpan(tracer, target, indexes.map(i => events[i] as GatewayEvent), parent)
      const producer = span === undefined ? undefined : toTraceparent(span.spanContext())
      // A destination that throws (a bug, an encoder fault) fails its own events, not the others'.
      const results = await Promise.resolve().then(() => target.delivery.publish(indexes.map(i => encode(target, i, producer)))).catch((err: unknown) => {
        const error = new GatewayError('EVG_BROKER_UNAVAILABLE', `${target.name} could not take the event (error)`, { retryAfter: 1, extensions: { reason: 'error' }, cause: err })
        return indexes.map(() => ({ ok: false as const, error }))
      })
      if (span !== undefined) endProducerSpan(span, results)
      results.forEach((result, k) => {
        const i = indexes[k] as number
        if (result.ok) (delivered[i] as string[]).push(target.name)
        else (failed[i] ??= []).push({ target, error: result.error })
      })
    }))
    return events.map((_, i) => {
      const failures = failed[i]
      const got = delivered[i] as string[]
      return failures === undefined ? { ok: true, delivered: got } : { ok: false, error: combine(failures, got), delivered: got }
    })
  }
}

/**
 * One answer for an event some destinations did not take: a refusal for good wins over "try
 * later" (a repeat cannot complete it), and the problem names every destination that failed.
 */
function combine (failures: { target: Target, error: GatewayError }[], delivered: string[]): GatewayError {
  const first = failures.find(f => !f.error.retryable) ?? failures[0] as { target: Target, error: GatewayError }
  // Retry-After only on an answer that says "try later".
  const retryAfter = first.error.retryable ? Math.max(0, ...failures.map(f => f.error.retryAfter ?? 0)) : 0
  const names = failures.map(f => f.target.name)
  return new GatewayError(first.error.code, failures.length === 1 && delivered.length === 0 ? first.error.message : `not delivered to ${names.join(', ')}: ${first.error.message}`, {
    ...(retryAfter > 0 ? { retryAfter } : {}),
    extensions: {
      ...first.error.extensions,
      destinations: failures.map(f => ({ name: f.target.name, code: f.error.code, ...(typeof f.error.extensions.reason === 'string' ? { reason: f.error.extensions.reason } : {}) })),
      delivered
    }
  })
}
