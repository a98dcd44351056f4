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
import { sendInChunks, sizeRefusal } from './chunks.js'
import { classifyAwsError } from './errors.js'

export interface SqsOptions {
  queueUrl: string
  maxMessageBytes: number
  /** Each call's deadline (PUBLISH_TIMEOUT_MS): aborted when it passes. */
  timeoutMs?: number
  /** Default: the SDK's (AWS_REGION, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL). */
  region?: string
  endpoint?: string
  client?: SQSClient
}

const BATCH = 10

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

  constructor (opts: SqsOptions) {
    this.#opts = opts
    this.#client = opts.client ?? new SQSClient({ maxAttempts: 1, ...sqsClientConfig(opts) })
    this.#fifo = opts.queueUrl.endsWith('.fifo')
  }

  async connect (): Promise<void> {
    await checkClient(this.#client.config, 'SQS')
  }

  #entry (outgoing: OutgoingEvent): SqsEntry & { size: number } {
    const { event, body, message } = outgoing
    const attrs = messageAttributes(outgoing)
    return {
      MessageBody: body,
      MessageAttributes: attrs,
      ...(this.#fifo
        ? {
            MessageGroupId: message?.groupId ?? event.groupKey ?? event.tenantId,
            MessageDeduplicationId: message?.deduplicationId ?? deduplicationId(event)
          }
        : {}),
      size: messageSize(body, attrs)
    }
  }

  refusal (event: OutgoingEvent): BrokerError | undefined {
    return sizeRefusal('SQS', this.#entry(event).size, { maxBytes: this.#opts.maxMessageBytes, noun: 'message' })
  }

  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    const built = events.map(event => {
      const { size, ...entry } = this.#entry(event)
      return { entry, size }
    })
    const queueUrl = this.#opts.queueUrl
    const limits = { maxBytes: this.#opts.maxMessageBytes, per: BATCH, noun: 'message' }
    return sendInChunks('SQS', built, limits, async (chunk, outcomes, total) => {
      const [first] = chunk
      if (total === 1 && first !== undefined) {
        const { index, entry } = first
        await this.#client.send(new SendMessageCommand({ QueueUrl: queueUrl, ...entry }), deadline(this.#opts.timeoutMs))
        outcomes[index] = { ok: true }
        return
      }
      const entries = chunk.map(({ index, entry }) => ({ Id: String(index), ...entry }))
      const batch = new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries })
      const res = await this.#client.send(batch, deadline(this.#opts.timeoutMs))
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
      for (const { index } of chunk) {
        outcomes[index] ??= {
          ok: false,
          error: new BrokerError('SQS did not answer for this entry', { retryable: true, reason: 'no_answer' })
        }
      }
    })
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
    if (this.#opts.client === undefined) this.#client.destroy()
  }
}
