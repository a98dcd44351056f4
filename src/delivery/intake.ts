import type { Context } from '@opentelemetry/api'
import type { FastifyBaseLogger } from 'fastify'
import { GatewayError, messageOf } from '../errors.js'
import type { GatewayEvent } from '../envelopes/event.js'
import { conflict, fingerprint, StateUnavailableError, type IdempotencyStore, type KeyRef, type Reservation } from '../state/idempotency.js'
import type { Metrics } from '../observability/metrics.js'
import type { FanOut } from './fan-out.js'
import { HeldKeys } from './held-keys.js'
import { zip } from './zip.js'

/**
 * One valid event a client asked to publish, made once by its route. With an idempotency key
 * (`event.idempotencyKey`), a repeat of a partly delivered request publishes the event kept for
 * the key instead.
 */
export interface IntakeItem {
  event: GatewayEvent
}

/** The answer for an accepted event, as clients (and idempotent repeats) get it. */
export interface Accepted {
  id: string
  type: string
  /** published: every destination has it; queued: a spooled destination's outbox has it, its relay publishes it. */
  status: 'published' | 'queued'
  correlationId: string
}

export type IntakeOutcome =
  | { ok: true, accepted: Accepted, replayed: boolean }
  | { ok: false, error: GatewayError }

export interface IntakeOptions {
  /** How long a repeat waits for the request holding its key (IDEMPOTENCY_WAIT_MS). */
  waitMs: number
  /** How long a reservation outlives a holder that died: longer than any publish. */
  leaseMs: number
  /** The tenant's key for fingerprints, when fields are protected (PROTECTION_KEYS_FILE); plain SHA-256 without. */
  fingerprintKey?: (tenant: string) => Buffer
}

interface Keyed {
  index: number
  item: IntakeItem
  ref: KeyRef
}

interface ToSend {
  index: number
  event: GatewayEvent
  /** Destinations that already have it (a repeat of a partly delivered request). */
  already?: Set<string>
  /** The reservation this event is published under. */
  keyed?: { ref: KeyRef, token: string }
}

/** A stored answer as this version keeps it; anything else is not replayed as if it were. */
function isAccepted (body: unknown): body is Accepted {
  return typeof body === 'object' && body !== null &&
    'id' in body && typeof body.id === 'string' &&
    'type' in body && typeof body.type === 'string' &&
    'status' in body && (body.status === 'published' || body.status === 'queued') &&
    'correlationId' in body && typeof body.correlationId === 'string'
}

const idOf = (ref: KeyRef) => `${ref.tenant}\0${ref.key}`
const stateUnavailable = () => new GatewayError(
  'EVG_STATE_UNAVAILABLE',
  'the idempotency store cannot be reached; send the request again shortly',
  { retryAfter: 1 }
)

/**
 * Where single and batch requests meet: events become envelopes for their destinations, and
 * idempotency keys make repeats safe. A key is reserved in the state store before its event is
 * published, so of concurrent requests with one key (on any replica sharing the store) exactly
 * one publishes; the others wait for its answer, up to IDEMPOTENCY_WAIT_MS, then get 409
 * EVG_IDEMPOTENCY_IN_PROGRESS. No request waits while it holds a key: the events it could
 * reserve are published first, then it waits for the others.
 */
export class Intake {
  readonly #fanOut: FanOut
  readonly #store: IdempotencyStore
  readonly #options: IntakeOptions
  readonly #metrics: Metrics
  readonly #log: FastifyBaseLogger
  readonly #held = new HeldKeys()

  constructor (fanOut: FanOut, store: IdempotencyStore, options: IntakeOptions, metrics: Metrics, log: FastifyBaseLogger) {
    this.#fanOut = fanOut
    this.#store = store
    this.#options = options
    this.#metrics = metrics
    this.#log = log
  }

  /** `trace`: the request's server span, when tracing is on. */
  async accept (items: readonly IntakeItem[], trace?: Context): Promise<IntakeOutcome[]> {
    const outcomes: (IntakeOutcome | undefined)[] = new Array(items.length)
    const plain: ToSend[] = []
    const repeats: { index: number, of: number }[] = []
    let keyed: Keyed[] = []
    const firstOfKey = new Map<string, { index: number, print: string }>()
    items.forEach((item, index) => {
      const { event } = item
      const key = event.idempotencyKey
      if (key === undefined) {
        plain.push({ index, event })
        return
      }
      const print = fingerprint(event.type, event.data, this.#options.fingerprintKey?.(event.tenantId))
      const ref = { tenant: event.tenantId, key, print }
      const earlier = firstOfKey.get(idOf(ref))
      if (earlier === undefined) {
        firstOfKey.set(idOf(ref), { index, print: ref.print })
        keyed.push({ index, item, ref })
      } else if (earlier.print === ref.print) {
        repeats.push({ index, of: earlier.index })
      } else {
        outcomes[index] = { ok: false, error: conflict('this idempotency key is used twice in the batch with different events') }
      }
    })

    const deadline = Date.now() + this.#options.waitMs
    let toSend = plain
    for (let round = 0; ; round++) {
      const unkeyed = toSend.length
      const busy = await this.#reserve(keyed, outcomes, toSend)
      // In request order: a batch's events reach each destination in the order they were sent.
      if (unkeyed > 0 && toSend.length > unkeyed) toSend.sort((a, b) => a.index - b.index)
      await this.#publish(toSend, outcomes, trace)
      if (round > 0 && keyed.length > busy.length) this.#metrics.idempotencyWaits.inc({ outcome: 'answered' }, keyed.length - busy.length)
      keyed = busy
      if (keyed.length === 0) break
      const left = deadline - Date.now()
      if (left <= 0) {
        for (const k of keyed) {
          const error = new GatewayError(
            'EVG_IDEMPOTENCY_IN_PROGRESS',
            'a request with this idempotency key is still being published; send it again to get its answer',
            { retryAfter: 1 }
          )
          outcomes[k.index] = { ok: false, error }
          this.#metrics.idempotencyWaits.inc({ outcome: 'in_progress' })
        }
        break
      }
      // Held here: woken when the holder is done. Held elsewhere: polled, more slowly each time.
      if (!await this.#held.waitFor(keyed.map(k => idOf(k.ref)), left)) {
        await new Promise(resolve => setTimeout(resolve, Math.min(20 * 2 ** round, 250, left)))
      }
      toSend = []
    }
    for (const r of repeats) outcomes[r.index] = outcomes[r.of]
    // every event has its outcome by now
    return Array.from(outcomes, o => o ?? { ok: false, error: new GatewayError('EVG_INTERNAL') })
  }

  /**
   * Ties a batch's Idempotency-Key to that batch (its events, in order): the same key with
   * another batch is refused as a whole. Its events are kept under `<key> <index>` (a space, which
   * no client key has), so they share the key space without colliding with single events' keys.
   */
  async pinBatch (tenant: string, key: string, events: readonly { type: string, data: unknown }[]): Promise<GatewayError | undefined> {
    const print = fingerprint('batch', events.map(e => [e.type, e.data]), this.#options.fingerprintKey?.(tenant))
    const ref = { tenant, key: `${key} batch`, print }
    let pinned: Reservation
    try {
      pinned = await this.#store.reserve(ref, this.#options.leaseMs)
    } catch (err) {
      this.#stateError('reserve', err)
      return stateUnavailable()
    }
    if (pinned.state === 'conflict') return conflict('this Idempotency-Key was already used with a different batch')
    // Busy or done: the same batch pinned it. Reserved: this one pins it, for 24 hours.
    if (pinned.state === 'reserved') {
      await this.#settle('complete', () => this.#store.complete(ref, pinned.token, { status: 0, body: null }))
    }
    return undefined
  }

  /** Reserves each key: reserved ones join `toSend`, answered ones get their outcome; returns those still busy. */
  async #reserve (keyed: Keyed[], outcomes: (IntakeOutcome | undefined)[], toSend: ToSend[]): Promise<Keyed[]> {
    const reserve = async (k: Keyed): Promise<Reservation | undefined> => {
      try {
        return await this.#store.reserve(k.ref, this.#options.leaseMs)
      } catch (err) {
        this.#stateError('reserve', err)
        return undefined
      }
    }
    const reservations = await Promise.all(keyed.map(async k => ({ k, r: await reserve(k) })))
    const busy: Keyed[] = []
    for (const { k, r } of reservations) {
      if (r === undefined) {
        outcomes[k.index] = { ok: false, error: stateUnavailable() }
      } else if (r.state === 'conflict') {
        outcomes[k.index] = { ok: false, error: conflict() }
      } else if (r.state === 'done') {
        outcomes[k.index] = isAccepted(r.answer.body)
          ? { ok: true, accepted: r.answer.body, replayed: true }
          : { ok: false, error: stateUnavailable() }
      } else if (r.state === 'busy') {
        busy.push(k)
      } else {
        const keyedBy = { ref: k.ref, token: r.token }
        toSend.push(r.partial === undefined
          ? { index: k.index, event: k.item.event, keyed: keyedBy }
          // The kept event's id, time and context with this request's data: the key's fingerprint
          // proves it the same, and the data is not kept (it may hold what a destination gets protected).
          : {
              index: k.index,
              event: { ...r.partial.event, data: k.item.event.data },
              already: new Set(r.partial.delivered),
              keyed: keyedBy
            })
      }
    }
    return busy
  }

  /**
   * Publishes, then settles each reservation: the answer kept, the partial event kept, or the key
   * released. The answer does not wait for the settling: until the store has it, the key stays
   * reserved, so a repeat waits rather than publishes (and this process's waiters wake once it
   * has it). A crash in between leaves the reservation to expire: a repeat then publishes again.
   */
  async #publish (toSend: ToSend[], outcomes: (IntakeOutcome | undefined)[], trace?: Context): Promise<void> {
    if (toSend.length === 0) return
    const done = toSend.flatMap(s => s.keyed === undefined ? [] : [this.#held.hold(idOf(s.keyed.ref))])
    const settled: Promise<void>[] = []
    let results
    try {
      results = await this.#fanOut.publish(toSend.map(s => s.event), toSend.map(s => s.already), trace)
    } catch (err) {
      await Promise.all(toSend.flatMap(({ keyed }) => keyed === undefined
        ? []
        : [this.#settle('release', () => this.#store.release(keyed.ref, keyed.token))]))
      for (const release of done) release()
      throw err
    }
    for (const [{ index, event, keyed }, result] of zip(toSend, results)) {
      if (result.ok) {
        const answer: Accepted = {
          id: event.id,
          type: event.type,
          status: this.#fanOut.spooled(event.type) ? 'queued' : 'published',
          correlationId: event.correlationId
        }
        outcomes[index] = { ok: true, accepted: answer, replayed: false }
        if (keyed !== undefined) {
          settled.push(this.#settle('complete', () => this.#store.complete(keyed.ref, keyed.token, { status: 202, body: answer })))
        }
        continue
      }
      outcomes[index] = { ok: false, error: result.error }
      if (keyed === undefined) continue
      // Kept when a repeat should send this very event (same id): some destinations have it, or
      // the failure may pass, and a destination that did not answer in time may have it all the
      // same: consumers that deduplicate by id then see it once. A refusal for good frees the key.
      settled.push(result.delivered.length > 0 || result.error.retryable
        ? this.#settle('keep', () => this.#store.keepPartial(keyed.ref, keyed.token, {
          event: { ...event, data: {} },
          delivered: result.delivered
        }))
        : this.#settle('release', () => this.#store.release(keyed.ref, keyed.token)))
    }
    // #settle never rejects
    void Promise.all(settled).then(() => { for (const release of done) release() })
  }

  /**
   * Settling a key must not turn a delivered event into an error: the client is told the truth,
   * the log why a repeat may publish again.
   */
  async #settle (operation: string, write: () => Promise<void>): Promise<void> {
    try {
      await write()
    } catch (err) {
      this.#metrics.stateErrors.inc({ operation })
      this.#log.error({ err: messageOf(err), operation },
        'could not store what became of an idempotency key: ' +
        'a repeat on another replica, after a restart or once its reservation expires may publish again')
    }
  }

  #stateError (operation: string, err: unknown): void {
    this.#metrics.stateErrors.inc({ operation })
    if (!(err instanceof StateUnavailableError)) this.#log.error({ err: messageOf(err), operation }, 'idempotency store failed')
  }
}
