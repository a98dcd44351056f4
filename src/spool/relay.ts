import type { FastifyBaseLogger } from 'fastify'
import type { Broker } from '../brokers/broker.js'
import { healthOf } from '../brokers/health.js'
import type { Delivery } from '../delivery/fan-out.js'
import { backoffMs } from '../delivery/retry.js'
import { messageOf } from '../errors.js'
import type { Metrics } from '../observability/metrics.js'
import { toOutgoing, type OutboxStore, type Spooled } from './outbox.js'
import { zip } from '../delivery/zip.js'

export interface RelayOptions {
  /** Who this replica is, in its claims. */
  owner: string
  batchSize: number
  /** OUTBOX_MAX_ATTEMPTS: failed attempts the broker answered before an event is a dead letter. */
  maxAttempts: number
  baseMs: number
  maxMs: number
  /** How often an idle relay looks for work another replica accepted (PostgreSQL). */
  pollMs: number
}

/** How long an append waits for others to join its batch before the relay looks. */
const GATHER_MS = 100

/**
 * Drains one destination's outbox: the oldest waiting events, in accept order, a batch at a time,
 * each batch through the destination's sync delivery. An event leaves the outbox only once the
 * broker confirmed it; one the broker refused for good, or said "not now" to OUTBOX_MAX_ATTEMPTS
 * times, becomes a dead letter. An event the broker said "not now" to moves behind the later ones
 * (they are not held back by it); one it did not answer at all stays where it is. The relay backs
 * off only when nothing of a batch got through, and then starts again from the oldest event, so
 * through an outage a tenant's events are never overtaken by its later ones.
 */
export class Relay {
  readonly #destination: { name: string, broker: Broker, delivery: Delivery }
  readonly #store: OutboxStore
  readonly #options: RelayOptions
  readonly #metrics: Metrics
  readonly #log: FastifyBaseLogger
  #running: Promise<void> | undefined
  #stopping = false
  #wake: (() => void) | undefined
  #woken = false
  #gathering: NodeJS.Timeout | undefined
  #gathered = 0
  /** Published, but the outbox could not delete them (a full disk): deleted before anything else is sent. */
  #unremoved: Spooled[] = []

  constructor (
    destination: { name: string, broker: Broker, delivery: Delivery },
    store: OutboxStore,
    options: RelayOptions,
    metrics: Metrics,
    log: FastifyBaseLogger
  ) {
    this.#destination = destination
    this.#store = store
    this.#options = options
    this.#metrics = metrics
    this.#log = log
  }

  start (): void {
    this.#running ??= this.#run()
  }

  /**
   * `events` were appended: look once a batch's worth waits, or GATHER_MS after the first, rather
   * than at the next poll. Under load the relay then makes a few full publishes and deletes
   * rather than one per request (a batch costs the gateway and the broker far less per event).
   */
  wake (events = this.#options.batchSize): void {
    this.#gathered += events
    if (this.#gathered >= this.#options.batchSize) this.#look()
    else this.#gathering ??= setTimeout(() => this.#look(), GATHER_MS)
  }

  #look (): void {
    clearTimeout(this.#gathering)
    this.#gathering = undefined
    this.#gathered = 0
    this.#woken = true
    this.#wake?.()
  }

  /** Finishes the batch in hand (published and settled, or left waiting), then stops. */
  async stop (): Promise<void> {
    this.#stopping = true
    clearTimeout(this.#gathering)
    this.#wake?.()
    await this.#running
  }

  async #run (): Promise<void> {
    const name = this.#destination.name
    let failures = 0
    while (!this.#stopping) {
      let outcome: 'idle' | 'done' | 'full' | 'failed'
      try {
        outcome = await this.#pass()
      } catch (err) {
        // The outbox itself failed (PostgreSQL unreachable, disk): nothing was lost; try later.
        outcome = 'failed'
        this.#log.error({ destination: name, err: messageOf(err) }, 'relay: the outbox could not be read or updated; trying again')
      }
      if (outcome === 'full') {
        failures = 0
        continue
      }
      if (outcome === 'idle' || outcome === 'done') {
        failures = 0
        await this.#sleep(this.#options.pollMs, true)
        continue
      }
      failures++
      const { baseMs, maxMs } = this.#options
      await this.#backOff(Math.max(baseMs, backoffMs(failures, { maxAttempts: 0, baseMs, maxMs, timeoutMs: 0 })))
    }
  }

  /**
   * Waits before the next attempt; while the broker is down, ends the wait as soon as it is back
   * (checked each second), so an outage ends in delivery within about a second.
   */
  async #backOff (ms: number): Promise<void> {
    const broker = this.#destination.broker
    const until = Date.now() + ms
    const wasDown = !(await healthOf(broker)).up
    while (!this.#stopping && Date.now() < until) {
      await this.#sleep(Math.min(1000, until - Date.now()), false)
      if (wasDown && (await healthOf(broker)).up) return
    }
  }

  /** An idle relay wakes on an append; one backing off does not. */
  async #sleep (ms: number, wakeable: boolean): Promise<void> {
    if (this.#stopping || (wakeable && this.#woken)) {
      this.#woken = false
      return
    }
    await new Promise<void>(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = () => { if (wakeable || this.#stopping) done() }
    })
    this.#wake = undefined
    this.#woken = false
  }

  /** One batch: taken, published, settled. */
  async #pass (): Promise<'idle' | 'done' | 'full' | 'failed'> {
    const { name, delivery } = this.#destination
    const store = this.#store
    const owner = this.#options.owner
    // Until the outbox takes the deletion, nothing is published: the same events would go again.
    if (this.#unremoved.length > 0) await this.#removePublished(this.#unremoved)
    const buckets = await store.claim(name, owner)
    if (buckets !== undefined && buckets.length === 0) return 'idle'
    this.#woken = false
    const batch = await store.next(name, buckets, this.#options.batchSize)
    if (batch.length < this.#options.batchSize && buckets !== undefined) {
      // Drained: another replica may take these buckets (and the tenants' next events) from now.
      const busy = new Set(batch.map(e => e.bucket))
      const idle = buckets.filter(b => !busy.has(b))
      if (idle.length > 0) await store.release(name, owner, idle)
    }
    if (batch.length === 0) return 'idle'
    const results = await delivery.publish(batch.map(toOutgoing))
    const published: Spooled[] = []
    const refused = new Map<string, Spooled[]>()
    const nacked: Spooled[] = []
    let unanswered = 0
    // Delivery answers once per event, in order.
    for (const [event, result] of zip(batch, results)) {
      if (result.ok) published.push(event)
      else if (!result.error.retryable) {
        const reason = `${result.error.code}: ${result.error.message}`
        refused.set(reason, [...refused.get(reason) ?? [], event])
      } else if (result.answered === true) nacked.push(event)
      else unanswered++
    }
    await this.#removePublished(published)
    for (const [reason, events] of refused) await this.#bury(events, reason)
    // The broker said "not now" to these (a queue at its length limit nacks): counted, and moved
    // behind the later events, each to wait its own backoff, so they never hold every tenant back.
    const spent = nacked.filter(e => e.attempts + 1 >= this.#options.maxAttempts)
    await this.#bury(spent, `failed ${this.#options.maxAttempts} attempts`)
    await this.#defer(nacked.filter(e => e.attempts + 1 < this.#options.maxAttempts))
    // No answer (a timeout, a lost connection) counts nothing and moves nothing: an outage of any
    // length buries nothing and keeps the order. The destination backs off only when nothing got
    // through for want of an answer.
    if (unanswered > 0 && published.length === 0) return 'failed'
    return batch.length === this.#options.batchSize || nacked.length > 0 || unanswered > 0 ? 'full' : 'done'
  }

  /** Each event waits base × 2^attempts (at most OUTBOX_RETRY_MAX_MS) before it is taken again. */
  async #defer (events: Spooled[]): Promise<void> {
    const byAttempts = new Map<number, Spooled[]>()
    for (const e of events) byAttempts.set(e.attempts + 1, [...byAttempts.get(e.attempts + 1) ?? [], e])
    const { baseMs, maxMs } = this.#options
    for (const [attempts, group] of byAttempts) {
      await this.#store.defer(group, Date.now() + Math.min(maxMs, baseMs * 2 ** Math.min(attempts, 30)))
    }
  }

  /** Deletes what the broker has; what the outbox could not delete is kept for the next pass to delete first. */
  async #removePublished (events: Spooled[]): Promise<void> {
    try {
      await this.#store.remove(events)
    } catch (err) {
      this.#unremoved = events
      throw err
    }
    this.#unremoved = []
    this.#metrics.outboxEvents.inc({ destination: this.#destination.name, outcome: 'published' }, events.length)
  }

  async #bury (events: Spooled[], reason: string): Promise<void> {
    if (events.length === 0) return
    await this.#store.bury(events, reason)
    this.#metrics.outboxEvents.inc({ destination: this.#destination.name, outcome: 'dead_lettered' }, events.length)
    // No payloads, tenants or event ids in the log: how many, where, why.
    this.#log.warn({ destination: this.#destination.name, events: events.length, reason }, 'relay: events moved to the dead letters')
  }
}
