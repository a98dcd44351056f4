import type { Context } from '@opentelemetry/api'
import type { FastifyBaseLogger } from 'fastify'
import type { CatalogType } from '../catalog/index.js'
import type { RequestContext } from '../context.js'
import { GatewayError } from '../errors.js'
import { createEvent, type GatewayEvent } from '../event.js'
import { conflict, fingerprint, type IdempotencyStore } from '../idempotency.js'
import type { FanOut } from './fan-out.js'

/** One valid event a client asked to publish. */
export interface IntakeItem {
  entry: CatalogType
  data: Record<string, unknown>
  ctx: RequestContext
  idempotencyKey?: string
}

/** The answer for an accepted event, as clients (and idempotent repeats) get it. */
export interface Accepted {
  id: string
  type: string
  status: 'published'
  correlationId: string
}

export type IntakeOutcome =
  | { ok: true, accepted: Accepted, replayed: boolean }
  | { ok: false, error: GatewayError }

interface ToSend {
  index: number
  event: GatewayEvent
  /** Destinations that already have it (a repeat of a partly delivered request). */
  already?: Set<string>
  keyed?: { tenant: string, key: string, print: string }
}

const accepted = (event: GatewayEvent): Accepted => ({ id: event.id, type: event.type, status: 'published', correlationId: event.correlationId })

/**
 * Where single and batch requests meet: events become envelopes for their destinations, and
 * idempotency keys make repeats safe. A key is held by one request of this process at a time;
 * a concurrent repeat waits for its answer instead of publishing again.
 */
export class Intake {
  readonly #fanOut: FanOut
  readonly #idempotency: IdempotencyStore
  readonly #log: FastifyBaseLogger

  constructor (fanOut: FanOut, idempotency: IdempotencyStore, log: FastifyBaseLogger) {
    this.#fanOut = fanOut
    this.#idempotency = idempotency
    this.#log = log
  }

  /** `trace`: the request's server span, when tracing is on. */
  async accept (items: readonly IntakeItem[], trace?: Context): Promise<IntakeOutcome[]> {
    // Wait until no other request of this process holds one of these keys. The loop ends with a
    // check that found none, and from there to the claims below nothing awaits: two waiters
    // woken together cannot both claim.
    for (;;) {
      const waits = new Set<Promise<void>>()
      for (const item of items) {
        const pending = item.idempotencyKey === undefined ? undefined : this.#idempotency.pending(item.ctx.tenantId, item.idempotencyKey)
        if (pending !== undefined) waits.add(pending)
      }
      if (waits.size === 0) break
      await Promise.all(waits)
    }
    const outcomes: (IntakeOutcome | undefined)[] = new Array(items.length)
    const toSend: ToSend[] = []
    const repeats: { index: number, of: number }[] = []
    const releases: (() => void)[] = []
    try {
      this.#prepare(items, outcomes, toSend, repeats, releases)
      const results = await this.#fanOut.publish(toSend.map(s => s.event), toSend.map(s => s.already), trace)
      results.forEach((result, k) => {
        const { index, event, keyed } = toSend[k] as ToSend
        if (result.ok) {
          const answer = accepted(event)
          outcomes[index] = { ok: true, accepted: answer, replayed: false }
          if (keyed !== undefined) this.#keep(() => this.#idempotency.remember(keyed.tenant, keyed.key, keyed.print, { status: 202, body: answer }))
        } else {
          outcomes[index] = { ok: false, error: result.error }
          if (keyed !== undefined && result.delivered.length > 0) this.#keep(() => this.#idempotency.rememberPartial(keyed.tenant, keyed.key, keyed.print, event, result.delivered))
        }
      })
    } finally {
      for (const release of releases) release()
    }
    for (const r of repeats) outcomes[r.index] = outcomes[r.of]
    return outcomes as IntakeOutcome[]
  }

  /** Keeping an answer must not turn a delivered event into an error: the client is told the truth, the log why a repeat may publish again. */
  #keep (write: () => void): void {
    try {
      write()
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'could not keep an idempotent answer; a repeat with its key may publish again')
    }
  }

  /** Look-ups and claims for every item, in one synchronous step. */
  #prepare (items: readonly IntakeItem[], outcomes: (IntakeOutcome | undefined)[], toSend: ToSend[], repeats: { index: number, of: number }[], releases: (() => void)[]): void {
    const firstOfKey = new Map<string, { index: number, print: string }>()
    items.forEach((item, index) => {
      const key = item.idempotencyKey
      if (key === undefined) {
        toSend.push({ index, event: createEvent(item.entry, item.data, item.ctx) })
        return
      }
      const tenant = item.ctx.tenantId
      const print = fingerprint(item.entry.type, item.data)
      const earlier = firstOfKey.get(`${tenant}\0${key}`)
      if (earlier !== undefined) {
        if (earlier.print === print) repeats.push({ index, of: earlier.index })
        else outcomes[index] = { ok: false, error: conflict('this idempotencyKey is used twice in the batch with different events') }
        return
      }
      firstOfKey.set(`${tenant}\0${key}`, { index, print })
      let kept
      try {
        kept = this.#idempotency.lookup(tenant, key, print)
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err
        outcomes[index] = { ok: false, error: err }
        return
      }
      if (kept?.state === 'done') {
        outcomes[index] = { ok: true, accepted: kept.answer.body as Accepted, replayed: true }
        return
      }
      releases.push(this.#idempotency.claim(tenant, key))
      const keyed = { tenant, key, print }
      toSend.push(kept?.state === 'partial'
        ? { index, event: kept.event, already: new Set(kept.delivered), keyed }
        : { index, event: createEvent(item.entry, item.data, item.ctx, key), keyed })
    })
  }
}
