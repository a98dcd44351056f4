import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Link, type Span, type Tracer } from '@opentelemetry/api'
import { parseTraceParent } from '@opentelemetry/core'
import { BrokerError, type PublishOutcome } from '../broker.js'
import { classifyAwsError } from './errors.js'

/** How events for one queue or bus are gathered into calls (AWS_BATCH_* and AWS_CALLS_IN_FLIGHT). */
export interface CoalescingOptions {
  /** Entries per call at most: 10 for SendMessageBatch and PutEvents; 1 sends each event alone. */
  maxEntries: number
  /** How long an event may wait for company before a call with room goes out; 0: not at all. */
  lingerMs: number
  /**
   * Calls with room for more entries that may be in flight at once. While that many are out, new
   * events gather into the next call until it is full or a call returns; full calls always go.
   */
  callsInFlight: number
}

export const DEFAULT_COALESCING: CoalescingOptions = { maxEntries: 10, lingerMs: 0, callsInFlight: 1 }

/** The service's limits: bytes per entry, which are also the most a call may carry (SQS, EventBridge). */
export interface ServiceLimits {
  service: string
  /** What the service calls an entry, for the refusal: `message`, `entry`. */
  noun: string
  maxBytes: number
}

/** The refusal of an entry over the service's size limit (answered 413), before any call. */
export function sizeRefusal (size: number, limits: ServiceLimits): BrokerError | undefined {
  if (size <= limits.maxBytes) return undefined
  return new BrokerError(`the ${limits.noun} is ${size} bytes; ${limits.service} takes at most ${limits.maxBytes}`, {
    retryable: false,
    reason: 'too_large',
    tooLarge: true
  })
}

/** An entry ready to send: its size as the service counts it, its FIFO group if any, its message's trace context. */
export interface Ready<E> {
  entry: E
  size: number
  group?: string
  traceparent?: string
}

/** The entry with its message's trace context (the producer span's, when tracing is on), for the call's span. */
export function withTrace<E> (ready: Ready<E>, outgoing: { traceparent?: string }): Ready<E> {
  if (outgoing.traceparent !== undefined) ready.traceparent = outgoing.traceparent
  return ready
}

/**
 * Each call's span, when tracing is on: `send <destination>` (a client span of its own trace) linked
 * to the producer span of every message it carries, as OpenTelemetry's messaging conventions
 * have a batch send.
 */
export interface CallTracing {
  tracer: Tracer
  system: string
  destination: string
}

interface Waiting<E> extends Ready<E> {
  /** When the caller stops waiting (epoch ms): an entry still here then is never sent. */
  deadline: number
  since: number
  resolve: (outcome: PublishOutcome) => void
}

/** What an AWS broker's options give its coalescer (SqsOptions, EventBridgeOptions). */
export interface CoalescerOptions {
  /** How events gather into calls (default: up to 10, no linger, 1 call with room out). */
  coalescing?: CoalescingOptions
  /** Told the number of entries of each call (gateway_aws_call_entries). */
  onCall?: (entries: number) => void
  /** Each call's span, linked to its messages' producer spans (when tracing is on). */
  trace?: CallTracing
}

/**
 * One call: the entries it carries, in order, and the time it has (the earliest deadline of its
 * entries); answers each, or throws for all.
 */
export type SendCall<E> = (entries: E[], timeoutMs: number) => Promise<PublishOutcome[]>

/**
 * Calls out at once per queue or bus, full ones included: a batch of 1,000 events is 100 calls,
 * which the SDK's sockets (50) would queue with their deadlines running.
 */
export const MAX_CALLS_OUT = 32

/**
 * Gathers the events that are ready for one queue or bus into as few calls as the service takes:
 * an event goes out at once when fewer than `callsInFlight` calls with room are out (a lone event
 * is never held back), else with the events that arrive while it waits, up to `maxEntries` and
 * `maxBytes` a call. Each entry's own result goes back to its own caller. Entries of one FIFO group
 * are never in two calls at once, and keep their order.
 */
export class Coalescer<E> {
  readonly #limits: ServiceLimits
  readonly #service: string
  readonly #send: SendCall<E>
  readonly #opts: CoalescingOptions
  readonly #maxBytes: number
  readonly #onCall: ((entries: number) => void) | undefined
  readonly #trace: CallTracing | undefined
  #queue: Waiting<E>[] = []
  /** Calls out that were sent with room for more. */
  #open = 0
  /** Calls out, full or not. */
  #out = 0
  /** When the last call ended (epoch ms). */
  #lastEnded = 0
  /** FIFO groups with an entry in a call that is out, and how many. */
  readonly #busy = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined

  constructor (limits: ServiceLimits, send: SendCall<E>, opts: CoalescerOptions = {}) {
    this.#limits = limits
    this.#service = limits.service
    this.#send = send
    this.#opts = opts.coalescing ?? DEFAULT_COALESCING
    this.#maxBytes = limits.maxBytes
    this.#onCall = opts.onCall
    this.#trace = opts.trace
  }

  /**
   * Sends `entries` with whatever else is waiting, and answers each, in order: an entry over the
   * size limit is refused before any call (413); one still waiting at `deadline` is never sent.
   */
  publish (entries: readonly Ready<E>[], deadline: number): Promise<PublishOutcome[]> {
    const since = Date.now()
    const outcomes = entries.map(r => {
      const tooLarge = sizeRefusal(r.size, this.#limits)
      if (tooLarge !== undefined) return { ok: false as const, error: tooLarge }
      return new Promise<PublishOutcome>(resolve => {
        this.#queue.push({ ...r, deadline, since, resolve })
      })
    })
    this.#pump()
    return Promise.all(outcomes)
  }

  #pump (): void {
    const now = Date.now()
    if (this.#queue.some(w => w.deadline <= now)) this.#expire(now, 'not sent before the publish deadline')
    while (this.#out < MAX_CALLS_OUT) {
      const { picked, full } = this.#pick()
      if (picked.length === 0) return
      if (!full) {
        if (this.#open >= this.#opts.callsInFlight) return
        const due = this.#due(picked, now)
        if (now < due) {
          this.#timer ??= setTimeout(() => { this.#timer = undefined; this.#pump() }, due - now)
          return
        }
      }
      const taken = new Set(picked)
      this.#queue = this.#queue.filter(w => !taken.has(w))
      void this.#call(picked, full)
    }
  }

  /**
   * When a call with room goes out. While the queue is busy (a call is out, or one ended within
   * the linger), once its oldest entry has lingered, and no later than a linger before any of its
   * entries' deadlines (an event never waits for company into its deadline). After a quiet spell,
   * at once: a lone event is never held back.
   */
  #due (picked: readonly Waiting<E>[], now: number): number {
    const linger = this.#opts.lingerMs
    if (linger === 0 || (this.#out === 0 && now - this.#lastEnded >= linger)) return 0
    let due = (picked[0] as Waiting<E>).since + linger
    for (const w of picked) due = Math.min(due, w.deadline - linger)
    return due
  }

  /** Entries whose caller has stopped waiting are answered "no answer in time" and never sent. */
  #expire (now: number, why: string): void {
    const late = new BrokerError(`${this.#service}: ${why}`, { retryable: true, reason: 'timeout' })
    this.#queue = this.#queue.filter(w => {
      if (w.deadline > now) return true
      w.resolve({ ok: false, error: late })
      return false
    })
  }

  /**
   * The next call's entries, oldest first: up to `maxEntries` and `maxBytes`, skipping FIFO groups
   * that have an entry out (and every later entry of a group skipped once, to keep its order).
   */
  #pick (): { picked: Waiting<E>[], full: boolean } {
    const picked: Waiting<E>[] = []
    let bytes = 0
    let skipped: Set<string> | undefined
    for (const w of this.#queue) {
      if (w.group !== undefined && (this.#busy.has(w.group) || skipped?.has(w.group) === true)) {
        (skipped ??= new Set()).add(w.group)
        continue
      }
      if (bytes + w.size > this.#maxBytes) return { picked, full: true }
      picked.push(w)
      bytes += w.size
      if (picked.length === this.#opts.maxEntries) return { picked, full: true }
    }
    return { picked, full: false }
  }

  /**
   * One call, aborted at the earliest deadline of its entries: a call still out when its caller
   * has answered 503 could otherwise deliver an event the client then sends again.
   */
  async #call (picked: Waiting<E>[], full: boolean): Promise<void> {
    if (!full) this.#open++
    this.#out++
    for (const { group } of picked) if (group !== undefined) this.#busy.set(group, (this.#busy.get(group) ?? 0) + 1)
    let outcomes: PublishOutcome[] = []
    let span: Span | undefined
    try {
      this.#onCall?.(picked.length)
      span = this.#trace === undefined ? undefined : this.#span(this.#trace, picked)
      const remainingMs = Math.max(1, Math.min(...picked.map(w => w.deadline)) - Date.now())
      outcomes = await this.#send(picked.map(w => w.entry), remainingMs)
    } catch (err) {
      const error = err instanceof BrokerError ? err : classifyAwsError(err, this.#service)
      outcomes = picked.map(() => ({ ok: false, error }))
    } finally {
      if (!full) this.#open--
      this.#out--
      this.#lastEnded = Date.now()
      for (const { group } of picked) {
        if (group === undefined) continue
        const n = (this.#busy.get(group) ?? 1) - 1
        if (n === 0) this.#busy.delete(group)
        else this.#busy.set(group, n)
      }
    }
    if (span !== undefined) {
      const failed = picked.filter((_, i) => outcomes[i]?.ok !== true).length
      if (failed > 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `${failed} of ${picked.length} entries not taken` })
      span.end()
    }
    picked.forEach((w, i) => {
      w.resolve(outcomes[i] ?? {
        ok: false,
        error: new BrokerError(`${this.#service} did not answer for this entry`, { retryable: true, reason: 'no_answer' })
      })
    })
    this.#pump()
  }

  #span ({ tracer, system, destination }: CallTracing, picked: readonly Waiting<E>[]) {
    const links: Link[] = []
    for (const { traceparent } of picked) {
      const context = traceparent === undefined ? null : parseTraceParent(traceparent)
      if (context !== null) links.push({ context })
    }
    return tracer.startSpan(`send ${destination}`, {
      kind: SpanKind.CLIENT,
      links,
      attributes: {
        'messaging.system': system,
        'messaging.destination.name': destination,
        'messaging.operation.type': 'send',
        'messaging.batch.message_count': picked.length
      }
    }, ROOT_CONTEXT)
  }

  /** Answers what still waits (at close): never sent, so a retry elsewhere cannot double it. */
  close (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#expire(Number.POSITIVE_INFINITY, 'not sent: the gateway is closing')
  }
}
