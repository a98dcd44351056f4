import { createHash } from 'node:crypto'
import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
  type MessageAttributeValue
} from '@aws-sdk/client-sqs'
import { BrokerError, type Broker, type BrokerHealth, type OutgoingEvent, type PublishOutcome } from '../broker.js'
import type { GatewayEvent } from '../../envelopes/event.js'
import { AWS_PROBE_TIMEOUT_MS, checkClient, deadline, probeAnswered, sqsClientConfig } from './credentials.js'
import {
  Coalescer, sizeRefusal, withTrace, type CoalescerOptions, type Ready, type ServiceLimits
} from './coalescer.js'
import { classifyAwsError } from './errors.js'
import { NativeMd5 } from './md5.js'

export interface SqsOptions extends CoalescerOptions {
  queueUrl: string
  maxMessageBytes: number
  /** Each call's deadline (PUBLISH_TIMEOUT_MS): aborted when it passes. */
  timeoutMs?: number
  /** Default: the SDK's (AWS_REGION, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL). */
  region?: string
  endpoint?: string
  client?: SQSClient
}

interface SqsEntry {
  MessageBody: string
  MessageAttributes: Record<string, MessageAttributeValue>
  MessageGroupId?: string
  MessageDeduplicationId?: string
}

/**
 * MessageDeduplicationId: hex sha256 of `{tenant}:{type}:{key}`; the key is the catalog's dedupe
 * field, else the Idempotency-Key, else the event id. The tenant is part of it because FIFO
 * deduplication is queue-wide: without it one tenant could suppress another's event by sending
 * the same call_id.
 */
export function deduplicationId (event: GatewayEvent): string {
  const key = event.dedupeKey ?? event.idempotencyKey ?? event.id
  return createHash('sha256').update(`${event.tenantId}:${event.type}:${key}`).digest('hex')
}

/**
 * An SQS message's attributes: the destination's declared ones (defaults included), else the
 * defaults (docs/envelopes.md).
 */
export function messageAttributes ({ event, traceparent, message }: OutgoingEvent): Record<string, MessageAttributeValue> {
  // A destination that declares its attributes renders them all, the defaults included.
  if (message?.attributes !== undefined) {
    const declared: Record<string, MessageAttributeValue> = {}
    for (const [name, a] of Object.entries(message.attributes)) declared[name] = { DataType: a.type, StringValue: a.value }
    return declared
  }
  const attrs: Record<string, MessageAttributeValue> = {
    'event-type': { DataType: 'String', StringValue: event.type },
    'tenant-id': { DataType: 'String', StringValue: event.tenantId },
    'correlation-id': { DataType: 'String', StringValue: event.correlationId }
  }
  if (event.userId !== undefined) attrs['user-id'] = { DataType: 'String', StringValue: event.userId }
  if (traceparent !== undefined) attrs.traceparent = { DataType: 'String', StringValue: traceparent }
  return attrs
}

/** SQS counts the body and every attribute's name, type and value against its size limit. */
export function messageSize (body: string, attrs: Record<string, MessageAttributeValue>): number {
  let size = Buffer.byteLength(body)
  for (const [name, value] of Object.entries(attrs)) {
    size += Buffer.byteLength(name) + Buffer.byteLength(value.DataType ?? '') + Buffer.byteLength(value.StringValue ?? '')
  }
  return size
}

/**
 * AWS SQS, standard or FIFO (URL ending in `.fifo`). One attempt per call (the client has
 * maxAttempts 1): retries are delivery's, and only for entries that were not the sender's fault.
 */
export class SqsBroker implements Broker {
  readonly name = 'sqs'
  readonly #opts: SqsOptions
  readonly #client: SQSClient
  readonly #fifo: boolean
  readonly #limits: ServiceLimits
  readonly #coalescer: Coalescer<SqsEntry>

  constructor (opts: SqsOptions) {
    this.#opts = opts
    this.#client = opts.client ?? new SQSClient({ maxAttempts: 1, md5: NativeMd5, ...sqsClientConfig(opts) })
    this.#fifo = opts.queueUrl.endsWith('.fifo')
    this.#limits = { service: 'SQS', noun: 'message', maxBytes: opts.maxMessageBytes }
    this.#coalescer = new Coalescer(this.#limits, (entries, timeoutMs) => this.#call(entries, timeoutMs), opts)
  }

  async connect (): Promise<void> {
    await checkClient(this.#client.config, 'SQS')
  }

  #entry (outgoing: OutgoingEvent): Ready<SqsEntry> {
    const { event, body, message } = outgoing
    const attrs = messageAttributes(outgoing)
    const size = messageSize(body, attrs)
    if (!this.#fifo) return { entry: { MessageBody: body, MessageAttributes: attrs }, size }
    const group = message?.groupId ?? event.groupKey ?? event.tenantId
    const entry = {
      MessageBody: body,
      MessageAttributes: attrs,
      MessageGroupId: group,
      MessageDeduplicationId: message?.deduplicationId ?? deduplicationId(event)
    }
    return { entry, size, group }
  }

  refusal (event: OutgoingEvent): BrokerError | undefined {
    return sizeRefusal(this.#entry(event).size, this.#limits)
  }

  /** Each event goes out with the others ready for this queue: SendMessageBatch, or SendMessage when alone. */
  async publish (events: readonly OutgoingEvent[], deadline?: number): Promise<PublishOutcome[]> {
    const ready = events.map(event => withTrace(this.#entry(event), event))
    return this.#coalescer.publish(ready, deadline ?? Date.now() + (this.#opts.timeoutMs ?? Infinity))
  }

  async #call (entries: SqsEntry[], timeoutMs: number): Promise<PublishOutcome[]> {
    const QueueUrl = this.#opts.queueUrl
    const [first] = entries
    if (entries.length === 1 && first !== undefined) {
      await this.#client.send(new SendMessageCommand({ QueueUrl, ...first }), deadline(this.#opts.timeoutMs, timeoutMs))
      return [{ ok: true }]
    }
    const batch = new SendMessageBatchCommand({ QueueUrl, Entries: entries.map((entry, i) => ({ Id: String(i), ...entry })) })
    const res = await this.#client.send(batch, deadline(this.#opts.timeoutMs, timeoutMs))
    const outcomes: PublishOutcome[] = new Array(entries.length)
    for (const ok of res.Successful ?? []) outcomes[Number(ok.Id)] = { ok: true }
    for (const failed of res.Failed ?? []) {
      // SenderFault: the entry itself is wrong and would fail again; otherwise try again.
      const senderFault = failed.SenderFault === true
      const error = new BrokerError(`SQS: ${failed.Code ?? 'failed'}: ${failed.Message ?? ''}`.trim(), {
        retryable: !senderFault,
        reason: senderFault ? 'sender_fault' : 'server_error',
        answered: true
      })
      outcomes[Number(failed.Id)] = { ok: false, error }
    }
    // An entry the answer does not name: the coalescer answers it "no answer" (retryable).
    return outcomes
  }

  async health (): Promise<BrokerHealth> {
    try {
      const probe = new GetQueueAttributesCommand({ QueueUrl: this.#opts.queueUrl, AttributeNames: ['QueueArn'] })
      await this.#client.send(probe, deadline(AWS_PROBE_TIMEOUT_MS))
      return { up: true }
    } catch (err) {
      const error = classifyAwsError(err, 'SQS')
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
