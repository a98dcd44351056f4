import { DescribeEventBusCommand, EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge'
import { BrokerError, type Broker, type BrokerHealth, type OutgoingEvent, type PublishOutcome } from '../broker.js'
import { AWS_PROBE_TIMEOUT_MS, awsClientConfig, checkClient, deadline, probeAnswered } from './credentials.js'
import {
  Coalescer, sizeRefusal, withTrace, type CoalescerOptions, type Ready, type ServiceLimits
} from './coalescer.js'
import { classifyAwsError, isRetryableCode } from './errors.js'

export interface EventBridgeOptions extends CoalescerOptions {
  busName: string
  source: string
  maxEntryBytes: number
  /** Each call's deadline (PUBLISH_TIMEOUT_MS): aborted when it passes. */
  timeoutMs?: number
  /** Default: the SDK's (AWS_REGION, AWS_ENDPOINT_URL_EVENTBRIDGE, AWS_ENDPOINT_URL). */
  region?: string
  endpoint?: string
  client?: EventBridgeClient
}

/** W3C traceparent -> X-Ray trace header (Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>). */
export function xrayTraceHeader (traceparent: string | undefined): string | undefined {
  if (traceparent === undefined) return undefined
  const m = /^00-([0-9a-f]{8})([0-9a-f]{24})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(traceparent)
  if (m === null) return undefined
  // The trace flags are the last two hex digits; bit 0 is "sampled".
  const flags = Number.parseInt(traceparent.slice(-2), 16)
  return `Root=1-${m[1]}-${m[2]};Parent=${m[3]};Sampled=${flags & 1}`
}

/** PutEvents entry size as AWS documents it: Time (14), Source, DetailType, Detail, Resources. */
export function entrySize (entry: PutEventsRequestEntry): number {
  return (entry.Time === undefined ? 0 : 14) + Buffer.byteLength(entry.Source ?? '') + Buffer.byteLength(entry.DetailType ?? '') +
    Buffer.byteLength(entry.Detail ?? '') + (entry.Resources ?? []).reduce((n, r) => n + Buffer.byteLength(r), 0)
}

/**
 * AWS EventBridge PutEvents, at most 10 entries a call. FailedEntryCount > 0 on an HTTP 200 is a
 * partial failure: entries failing with InternalFailure or ThrottlingException are retried by
 * delivery, other failed entries are refused for good.
 */
export class EventBridgeBroker implements Broker {
  readonly name = 'eventbridge'
  readonly #opts: EventBridgeOptions
  readonly #client: EventBridgeClient
  readonly #limits: ServiceLimits
  readonly #coalescer: Coalescer<PutEventsRequestEntry>

  constructor (opts: EventBridgeOptions) {
    this.#opts = opts
    this.#client = opts.client ?? new EventBridgeClient({ maxAttempts: 1, ...awsClientConfig(opts) })
    this.#limits = { service: 'EventBridge', noun: 'entry', maxBytes: opts.maxEntryBytes }
    this.#coalescer = new Coalescer(this.#limits, (entries, timeoutMs) => this.#call(entries, timeoutMs), opts)
  }

  async connect (): Promise<void> {
    await checkClient(this.#client.config, 'EventBridge')
  }

  #entry ({ event, body, traceparent, message }: OutgoingEvent): Ready<PutEventsRequestEntry> {
    const trace = xrayTraceHeader(traceparent)
    const entry: PutEventsRequestEntry = {
      EventBusName: message?.busName ?? this.#opts.busName,
      Source: message?.source ?? this.#opts.source,
      DetailType: message?.detailType ?? event.type,
      Detail: body,
      Time: new Date(event.time),
      ...(trace === undefined ? {} : { TraceHeader: trace })
    }
    return { entry, size: entrySize(entry) }
  }

  refusal (event: OutgoingEvent): BrokerError | undefined {
    return sizeRefusal(this.#entry(event).size, this.#limits)
  }

  /** Each event goes out in one PutEvents call with the others ready for this bus. */
  async publish (events: readonly OutgoingEvent[], deadline?: number): Promise<PublishOutcome[]> {
    const ready = events.map(event => withTrace(this.#entry(event), event))
    return this.#coalescer.publish(ready, deadline ?? Date.now() + (this.#opts.timeoutMs ?? Infinity))
  }

  async #call (entries: PutEventsRequestEntry[], timeoutMs: number): Promise<PublishOutcome[]> {
    const res = await this.#client.send(new PutEventsCommand({ Entries: entries }), deadline(this.#opts.timeoutMs, timeoutMs))
    return entries.map((_, k): PublishOutcome => {
      const result = res.Entries?.[k]
      if (result?.EventId !== undefined && result.ErrorCode === undefined) return { ok: true }
      const code = result?.ErrorCode ?? 'NoResult'
      const retryable = isRetryableCode(code) || result === undefined
      const reason = retryable
        ? (/thrott/i.test(code) ? 'throttled' : 'server_error')
        : code.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase()
      const error = new BrokerError(`EventBridge: ${code}: ${result?.ErrorMessage ?? 'no result for this entry'}`, {
        retryable,
        reason,
        answered: result !== undefined
      })
      return { ok: false, error }
    })
  }

  async health (): Promise<BrokerHealth> {
    try {
      await this.#client.send(new DescribeEventBusCommand({ Name: this.#opts.busName }), deadline(AWS_PROBE_TIMEOUT_MS))
      return { up: true }
    } catch (err) {
      const error = classifyAwsError(err, 'EventBridge')
      return probeAnswered(error.reason)
        ? { up: true, detail: 'reachable; this role may not describe the target, only publish' }
        : { up: false, detail: error.message }
    }
  }

  async close (): Promise<void> {
    this.#coalescer.close()
    if (this.#opts.client === undefined) this.#client.destroy()
  }
}
