import { BrokerError, routingKeyOf, type Broker, type BrokerHealth, type OutgoingEvent, type PublishOutcome } from './broker.js'

/** What the memory broker was given, with the envelope parsed for tests to look at. */
export interface RecordedEvent extends OutgoingEvent {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read any profile's fields
  envelope: any
  routingKey: string
  dedupeKey?: string
}

interface Waiter {
  match: (e: RecordedEvent) => boolean
  resolve: (e: RecordedEvent) => void
}

/**
 * For unit tests of the HTTP layer: records what it was given, can be told to fail the next
 * publishes, and lets a test await an event instead of sleeping. Not selectable by BROKER.
 */
export class MemoryBroker implements Broker {
  readonly name: string
  readonly published: RecordedEvent[] = []
  /** Number of publish calls made, including failed ones. */
  calls = 0
  closed = false
  up = true
  #failures: BrokerError[] = []
  #gate: Promise<void> | undefined
  #waiters: Waiter[] = []

  constructor (name = 'memory') {
    this.name = name
  }

  async connect (): Promise<void> {}

  /** The next `times` publish calls fail with `error` for every event they carry. */
  failNext (times: number, error = new BrokerError('simulated outage', { retryable: true, reason: 'simulated' })): void {
    for (let i = 0; i < times; i++) this.#failures.push(error)
  }

  /** Publishes wait until the returned function is called. */
  hold (): () => void {
    let release!: () => void
    this.#gate = new Promise(resolve => { release = resolve })
    return () => { this.#gate = undefined; release() }
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    this.calls++
    if (this.#gate !== undefined) await this.#gate
    const failure = this.#failures.shift()
    if (failure !== undefined) return events.map(() => ({ ok: false, error: failure }))
    for (const outgoing of events) {
      const dedupeKey = outgoing.event.dedupeKey
      const e: RecordedEvent = {
        ...outgoing,
        envelope: JSON.parse(outgoing.body),
        routingKey: routingKeyOf(outgoing),
        ...(dedupeKey === undefined ? {} : { dedupeKey })
      }
      this.published.push(e)
      this.#waiters = this.#waiters.filter(w => {
        if (!w.match(e)) return true
        w.resolve(e)
        return false
      })
    }
    return events.map(() => ({ ok: true }))
  }

  /** Resolves with the first published event (already or later) that has these properties. */
  waitFor (filter: { type?: string, tenantId?: string }): Promise<RecordedEvent> {
    const match = (e: RecordedEvent) => (filter.type === undefined || e.event.type === filter.type) &&
      (filter.tenantId === undefined || e.event.tenantId === filter.tenantId)
    const found = this.published.find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise(resolve => this.#waiters.push({ match, resolve }))
  }

  async health (): Promise<BrokerHealth> {
    return this.up ? { up: true } : { up: false, detail: 'simulated down' }
  }

  async close (): Promise<void> {
    this.closed = true
  }
}
