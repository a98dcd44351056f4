import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { FastifyBaseLogger } from 'fastify'
import type { Broker, OutgoingEvent } from '../brokers/broker.js'
import type { Config } from '../config/index.js'
import { refusedFor, type DeliveryResult } from '../delivery/publisher.js'
import { codeOf, GatewayError } from '../errors.js'
import type { Metrics } from '../observability/metrics.js'
import { toRow, type DeadLetterQuery, type DestinationStats, type OutboxStore, type TenantScope } from './outbox.js'
import { PostgresOutbox } from './postgres.js'
import type { Delivery } from '../delivery/fan-out.js'
import { Relay } from './relay.js'
import { SqliteOutbox } from './sqlite.js'

export type { OutboxStore } from './outbox.js'

/** A spooled destination's state, for readiness, the admin API and metrics. */
export interface OutboxState extends DestinationStats {
  oldestAgeSeconds: number
}

/**
 * Spool mode: the destinations that answer once the outbox has an event, their relays, and the
 * store they share. Built only when some destination is spooled.
 */
export class Spool {
  readonly store: OutboxStore
  readonly #relays = new Map<string, Relay>()
  readonly #config: Config
  readonly #metrics: Metrics
  readonly #log: FastifyBaseLogger

  constructor (config: Config, metrics: Metrics, log: FastifyBaseLogger, store?: OutboxStore) {
    this.#config = config
    this.#metrics = metrics
    this.#log = log
    this.store = store ?? (config.SPOOL_URL !== undefined && config.SPOOL_URL !== ''
      ? new PostgresOutbox(config.SPOOL_URL, log, { leaseMs: config.OUTBOX_LEASE_MS, queryTimeoutMs: config.PUBLISH_TIMEOUT_MS })
      : new SqliteOutbox(config.DATA_DIR))
  }

  /**
   * The intake side of a spooled destination: appends to the outbox and answers; its relay,
   * started with the others, publishes through `delivery` (the destination's sync delivery).
   */
  destination (destination: { name: string, broker: Broker, delivery: Delivery }): SpoolDelivery {
    const relay = new Relay(destination, this.store, {
      owner: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
      batchSize: this.#config.OUTBOX_BATCH_SIZE,
      maxAttempts: this.#config.OUTBOX_MAX_ATTEMPTS,
      baseMs: this.#config.RETRY_BASE_MS,
      maxMs: this.#config.OUTBOX_RETRY_MAX_MS,
      pollMs: this.store.kind === 'postgres' ? 250 : 1000
    }, this.#metrics, this.#log)
    this.#relays.set(destination.name, relay)
    return new SpoolDelivery(destination.name, destination.broker, this, relay)
  }

  get destinations (): string[] {
    return [...this.#relays.keys()]
  }

  async connect (): Promise<void> {
    await this.store.connect(this.destinations)
    // Events kept for a destination the routes no longer spool wait until it is back.
    const orphans = (await this.store.stats()).filter(s => !this.#relays.has(s.destination) && s.depth + s.deadLetters > 0)
    for (const o of orphans) {
      this.#log.warn({ destination: o.destination, waiting: o.depth, deadLetters: o.deadLetters },
        'the outbox holds events for a destination that is not spooled now: they wait (and count against OUTBOX_MAX_*) until it is')
    }
  }

  startRelays (): void {
    for (const relay of this.#relays.values()) relay.start()
  }

  /** Each relay finishes its batch (published and settled, or left waiting). */
  async stopRelays (): Promise<void> {
    await Promise.all([...this.#relays.values()].map(r => r.stop()))
  }

  async close (): Promise<void> {
    await this.store.close()
  }

  /** The limits an append is refused over: 503 EVG_OVERLOADED, never an unbounded disk. */
  refusal (events: number, bytes: number): GatewayError | undefined {
    const totals = this.store.totals()
    // The limit's name, not the counts: how much other tenants sent is not a client's business.
    const full = totals.events + events > this.#config.OUTBOX_MAX_EVENTS
      ? 'OUTBOX_MAX_EVENTS'
      : totals.bytes + bytes > this.#config.OUTBOX_MAX_BYTES ? 'OUTBOX_MAX_BYTES' : undefined
    if (full === undefined) return undefined
    const detail = `the outbox is full (${full}), waiting for its destinations or dead letters to be dealt with; retry later`
    return new GatewayError('EVG_OVERLOADED', detail, { retryAfter: 5, extensions: { reason: 'outbox_full' } })
  }

  /** Every spooled destination's state, with a line for each even when its outbox is empty. */
  async states (): Promise<OutboxState[]> {
    const stats = new Map((await this.store.stats()).map(s => [s.destination, s]))
    const now = Date.now()
    return this.destinations.map(destination => {
      const s = stats.get(destination) ?? { destination, depth: 0, bytes: 0, deadLetters: 0, deadBytes: 0 }
      return { ...s, oldestAgeSeconds: s.oldestAcceptedAt === undefined ? 0 : Math.max(0, (now - s.oldestAcceptedAt) / 1000) }
    })
  }

  /** Sets the outbox gauges (at scrape). */
  async observe (): Promise<OutboxState[]> {
    const states = await this.states()
    for (const s of states) {
      this.#metrics.outboxDepth.set({ destination: s.destination }, s.depth)
      this.#metrics.outboxOldestAge.set({ destination: s.destination }, s.oldestAgeSeconds)
      this.#metrics.outboxDeadLetters.set({ destination: s.destination }, s.deadLetters)
    }
    return states
  }

  /** Only into the outboxes of destinations spooled now: another's would never be relayed. */
  async replay (query: DeadLetterQuery): Promise<number> {
    let n = 0
    const destinations = query.destination === undefined ? this.destinations : [query.destination]
    for (const destination of destinations) n += await this.store.replay({ ...query, destination })
    if (n > 0) {
      this.#log.info({ destination: query.destination, events: n }, 'dead letters replayed')
      for (const [name, relay] of this.#relays) if (query.destination === undefined || query.destination === name) relay.wake()
    }
    return n
  }

  async purge (query: DeadLetterQuery): Promise<number> {
    const n = await this.store.purge(query)
    if (n > 0) this.#log.warn({ destination: query.destination, events: n }, 'dead letters purged')
    return n
  }

  /**
   * The events still waiting for a destination this gateway no longer spools (gone from the
   * routes): deleted. A destination spooled now is refused: its relay would race the delete.
   */
  async purgeWaiting (destination: string, tenants?: TenantScope): Promise<number> {
    if (this.destinations.includes(destination)) {
      throw new GatewayError('EVG_VALIDATION',
        `'${destination.slice(0, 64)}' is spooled by this gateway: its waiting events are being relayed, not purged`)
    }
    const n = await this.store.purgeWaiting(destination, tenants)
    if (n > 0) this.#log.warn({ destination, events: n }, 'waiting events of a destination no longer spooled purged')
    return n
  }

  count (destination: string, outcome: string, n: number): void {
    this.#metrics.outboxEvents.inc({ destination, outcome }, n)
  }
}

// SQLite errors that mean the disk cannot take more, or not at all: try later, another replica.
const unavailable = (err: unknown) => new GatewayError(
  'EVG_SPOOL_UNAVAILABLE',
  'the outbox cannot store the event now; send it again shortly',
  { retryAfter: 1, extensions: { reason: String(codeOf(err) ?? 'error').toLowerCase() }, cause: err }
)

/**
 * A spooled destination as fan-out sees it: an event is taken once the outbox has it on disk
 * (`queued`); the relay publishes it later.
 */
export class SpoolDelivery {
  readonly #name: string
  readonly #broker: Broker
  readonly #spool: Spool
  readonly #relay: Relay
  readonly mode = 'spool'

  constructor (name: string, broker: Broker, spool: Spool, relay: Relay) {
    this.#name = name
    this.#broker = broker
    this.#spool = spool
    this.#relay = relay
  }

  async publish (events: readonly OutgoingEvent[]): Promise<DeliveryResult[]> {
    // What the broker is known to refuse (too large for SQS or EventBridge) is answered 413 now,
    // as a sync destination would: never a 202 for a dead letter to be.
    const refusals = this.#broker.refusal === undefined ? undefined : events.map(e => this.#broker.refusal?.(e))
    if (refusals === undefined || refusals.every(r => r === undefined)) return await this.#append(events)
    const taken = events.filter((_, i) => refusals[i] === undefined)
    const results = taken.length === 0 ? [] : await this.#append(taken)
    // #append answers once per event taken, in order: one result for each refusal left undefined.
    return refusals.map(r => r === undefined ? results.shift() as DeliveryResult : { ok: false, error: refusedFor(this.#name, r) })
  }

  async #append (events: readonly OutgoingEvent[]): Promise<DeliveryResult[]> {
    const now = Date.now()
    const rows = events.map(e => toRow(this.#name, e, now))
    const refusal = this.#spool.refusal(rows.length, rows.reduce((sum, r) => sum + r.bytes, 0))
    if (refusal !== undefined) {
      this.#spool.count(this.#name, 'refused', rows.length)
      return events.map(() => ({ ok: false, error: refusal }))
    }
    try {
      await this.#spool.store.append(rows)
    } catch (err) {
      const error = unavailable(err)
      this.#spool.count(this.#name, 'refused', rows.length)
      return events.map(() => ({ ok: false, error }))
    }
    this.#spool.count(this.#name, 'queued', rows.length)
    this.#relay.wake(rows.length)
    return events.map(() => ({ ok: true }))
  }
}
