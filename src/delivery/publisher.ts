import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { BrokerError, type Broker, type OutgoingEvent, type PublishOutcome } from '../brokers/broker.js'
import { GatewayError, messageOf } from '../errors.js'
import type { Metrics } from '../observability/metrics.js'
import { backoffMs, type RetryPolicy } from './retry.js'
import { zip } from './zip.js'

/** The answer for an event a destination's broker refused for good: 413 when too large, else 502. */
export function refusedFor (destination: string, error: BrokerError): GatewayError {
  // Library messages stay in the log; a size refusal is our own words and tells the client the limit.
  const detail = error.tooLarge ? error.message : `the broker refused it (${error.reason})`
  return new GatewayError(error.tooLarge ? 'EVG_TOO_LARGE' : 'EVG_BROKER_REJECTED', `${destination} refused the event: ${detail}`, {
    extensions: { reason: error.reason }
  })
}

/**
 * An event's answer. A failure that is `answered` was the broker's own "not now" for this event
 * (a nack, a failed batch entry): the outbox counts it and moves the event behind later ones.
 */
export type DeliveryResult = { ok: true } | { ok: false, error: GatewayError, answered?: boolean }

/**
 * Sync delivery to one destination: hands events to its broker and answers once it has them.
 * Only events whose failure is retryable are tried again, with backoff, inside the publish
 * deadline; what is left becomes EVG_BROKER_UNAVAILABLE (try later) or EVG_BROKER_REJECTED
 * (refused for good).
 */
/** An event of a publish: its result once known, and the seconds it took. */
interface Slot { event: OutgoingEvent, result: DeliveryResult | undefined, seconds: number, lastError?: BrokerError }

export class SyncDelivery {
  readonly #name: string
  readonly #broker: Broker
  readonly #policy: RetryPolicy
  readonly #metrics: Metrics
  readonly #log: FastifyBaseLogger
  readonly #labels: { destination: string, broker: string }
  /** Each (type, outcome)'s metric children, resolved once rather than per event. */
  readonly #bySeries = new Map<string, { published: { inc: () => void }, duration: { observe: (seconds: number) => void } }>()

  constructor (destination: { name: string, broker: Broker }, policy: RetryPolicy, metrics: Metrics, log: FastifyBaseLogger) {
    this.#name = destination.name
    this.#broker = destination.broker
    this.#policy = policy
    this.#metrics = metrics
    this.#log = log
    this.#labels = { destination: destination.name, broker: destination.broker.name }
  }

  #series (type: string, outcome: string) {
    const key = `${type}\0${outcome}`
    let series = this.#bySeries.get(key)
    if (series === undefined) {
      const { destination, broker } = this.#labels
      series = {
        published: this.#metrics.published.labels(destination, broker, type, outcome),
        duration: this.#metrics.publishDuration.labels(destination, broker, type, outcome)
      }
      this.#bySeries.set(key, series)
    }
    return series
  }

  get retryAfterSeconds (): number {
    return Math.max(1, Math.ceil(this.#policy.maxMs / 1000))
  }

  async publish (events: readonly OutgoingEvent[]): Promise<DeliveryResult[]> {
    const started = performance.now()
    const elapsed = () => (performance.now() - started) / 1000
    const deadline = Date.now() + this.#policy.timeoutMs
    // Per event, its result once known, and when: one taken in the first call is done then, not
    // when the last retry of another ends.
    const slots: Slot[] = events.map(event => ({ event, result: undefined, seconds: 0 }))
    let pending = slots
    let lastError: BrokerError | undefined
    const name = this.#name
    const labels = this.#labels

    for (let attempt = 1; pending.length > 0; attempt++) {
      // The first attempt sends every event: the caller's array as it is.
      const batch = attempt === 1 ? events : pending.map(s => s.event)
      const outcomes = await this.#attempt(batch, deadline - Date.now())
      const retry: Slot[] = []
      const refused: BrokerError[] = []
      let brokerDown = true
      const answered = elapsed()
      for (const [slot, outcome] of zip(pending, outcomes)) {
        slot.seconds = answered
        if (!outcome.ok) this.#metrics.failures.inc({ ...labels, reason: outcome.error.reason })
        if (outcome.ok) {
          slot.result = outcome
        } else if (outcome.error.retryable) {
          lastError = outcome.error
          slot.lastError = outcome.error
          brokerDown &&= outcome.error.down
          retry.push(slot)
        } else {
          slot.result = { ok: false, error: refusedFor(name, outcome.error) }
          refused.push(outcome.error)
        }
      }
      // One line per call, not per event: a batch of 100 refused events is one fact.
      if (refused.length > 0) {
        const [example] = refused
        this.#log.warn({ ...labels, events: refused.length, reason: example?.reason, err: example?.message }, 'the broker refused events')
      }
      pending = retry
      if (pending.length === 0) break
      const wait = backoffMs(attempt, this.#policy)
      if (brokerDown || attempt >= this.#policy.maxAttempts || Date.now() + wait >= deadline) break
      this.#metrics.retries.inc(labels, pending.length)
      this.#log.warn({ ...labels, attempt, events: pending.length, reason: lastError?.reason, waitMs: wait }, 'publish failed, retrying')
      await sleep(wait)
    }
    if (pending.length > 0) {
      this.#log.warn({ ...labels, events: pending.length, reason: lastError?.reason, err: lastError?.message }, 'publish failed')
    }
    // Each event's own last failure: in a batch, one event nacked and another timed out are told apart.
    const notTaken = (error: BrokerError | undefined): DeliveryResult => ({
      ok: false,
      error: new GatewayError('EVG_BROKER_UNAVAILABLE', `${name} could not take the event (${error?.reason ?? 'no answer'}); retry later`, {
        retryAfter: this.retryAfterSeconds,
        extensions: { reason: error?.reason ?? 'unknown' }
      }),
      answered: error?.answered ?? false
    })
    return slots.map(slot => {
      // still pending: not taken in time
      const r = slot.result ?? notTaken(slot.lastError)
      const outcome = r.ok ? 'published' : r.error.code === 'EVG_BROKER_UNAVAILABLE' ? 'unavailable' : 'rejected'
      const series = this.#series(slot.event.event.type, outcome)
      series.published.inc()
      series.duration.observe(slot.seconds)
      return r
    })
  }

  /**
   * One broker call, bounded by the time left; a throw or a timeout fails every event retryably.
   * One timer per call (a batch's events share it), settled without a Promise.race.
   */
  #attempt (batch: readonly OutgoingEvent[], remainingMs: number): Promise<PublishOutcome[]> {
    const fail = (error: BrokerError) => batch.map(() => ({ ok: false as const, error }))
    if (remainingMs <= 0) return Promise.resolve(fail(new BrokerError('publish deadline passed', { retryable: true, reason: 'timeout' })))
    return new Promise(resolve => {
      const timedOut = () => new BrokerError(`no answer within ${this.#policy.timeoutMs} ms`, { retryable: true, reason: 'timeout' })
      const timer = setTimeout(() => resolve(fail(timedOut())), remainingMs)
      const failed = (err: unknown) => {
        clearTimeout(timer)
        resolve(fail(err instanceof BrokerError
          ? err
          : new BrokerError(messageOf(err), { retryable: true, reason: 'error', cause: err })))
      }
      try {
        this.#broker.publish(batch, Date.now() + remainingMs).then(outcomes => {
          clearTimeout(timer)
          resolve(outcomes)
        }, failed)
      } catch (err) {
        failed(err)
      }
    })
  }
}
