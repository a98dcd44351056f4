import {
  CreateQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, SetQueueAttributesCommand, SQSClient
} from '@aws-sdk/client-sqs'
import { sqsClientConfig } from '../brokers/aws/credentials.js'
import type { DestinationConfig } from '../routing/index.js'
import { jsonObject } from './common.js'
import { CliFailure } from './failure.js'
import type { Steps } from './steps.js'

/** The fields of what an AWS call threw that say what went wrong, where it has them. */
const awsError = (err: unknown): { name?: unknown, message?: unknown, $metadata?: unknown } =>
  typeof err === 'object' && err !== null ? err : {}

export const notFound = (err: unknown) => /NonExistentQueue|QueueDoesNotExist|ResourceNotFound/.test(String(awsError(err).name))

/** A field AWS always answers with, though its SDK types every field as optional. */
export function answered<T> (value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`AWS answered without ${what}`)
  return value
}

export interface ProvisionedQueue { name: string, url: string, arn: string, fifo: boolean }

/** The queue's name: the last part of its URL. */
export function queueNameOf (queueUrl: string): string {
  return queueUrl.slice(queueUrl.lastIndexOf('/') + 1)
}

/**
 * An SQS client for the CLIs: a few attempts (nothing else retries here), the destination's region
 * and endpoint, and an endpoint named in the environment honoured as the gateway honours it.
 */
export function cliSqsClient (opts: { region?: string, endpoint?: string } = {}): SQSClient {
  return new SQSClient({ maxAttempts: 3, ...sqsClientConfig(opts) })
}

/**
 * Idempotent: the queue and its DLQ `<name>-dlq` with a redrive policy (5 receives); FIFO (a name
 * ending in `.fifo`) gets per-group deduplication and throughput. Each step looks first and only
 * creates what is missing.
 */
export async function ensureQueueWithDlq (sqs: SQSClient, queue: string, steps: Steps): Promise<ProvisionedQueue> {
  const fifo = queue.endsWith('.fifo')
  const dlqName = fifo ? `${queue.slice(0, -5)}-dlq.fifo` : `${queue}-dlq`
  const fifoAttrs: Record<string, string> = fifo
    ? { FifoQueue: 'true', DeduplicationScope: 'messageGroup', FifoThroughputLimit: 'perMessageGroupId' }
    : {}

  const ensure = async (name: string, attributes: Record<string, string>): Promise<{ url: string, arn: string }> => {
    let url: string | undefined
    try {
      url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl
    } catch (err) {
      if (!notFound(err)) throw err
    }
    const created = url === undefined
    if (created) url = (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))
    const arn = answered(Attributes?.QueueArn, 'QueueArn')
    steps.say(`queue ${name}${fifo ? ' (FIFO)' : ''}`, created)
    return { url: answered(url, 'QueueUrl'), arn }
  }

  const dlq = await ensure(dlqName, { ...fifoAttrs, MessageRetentionPeriod: '1209600' })
  const main = await ensure(queue, fifoAttrs)
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: main.url, AttributeNames: ['RedrivePolicy'] }))
  const current = Attributes?.RedrivePolicy
  const hasRedrive = current !== undefined && jsonObject(JSON.parse(current)).deadLetterTargetArn === dlq.arn
  if (!hasRedrive) {
    const redrivePolicy = JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: '5' })
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: main.url, Attributes: { RedrivePolicy: redrivePolicy } }))
  }
  steps.say(`redrive ${queue} -> ${dlqName} after 5 receives`, !hasRedrive)
  return { name: queue, ...main, fifo }
}

/** An AWS error as provision's exit code: 2 unreachable or no credentials, 3 refused. */
export function awsFailure (err: unknown): CliFailure {
  if (err instanceof CliFailure) return err
  const e = awsError(err)
  const unreachable = e.$metadata === undefined || /ECONNREFUSED|ENOTFOUND|Credential/i.test(`${e.name} ${e.message}`)
  return new CliFailure(unreachable ? 2 : 3, `AWS refused or could not be reached: ${e.name ?? 'Error'}: ${e.message ?? ''}`)
}

/** An SQS destination: its queue (named by its queueUrl), DLQ and redrive, in its region / at its endpoint. */
export async function provisionSqs (destination: Extract<DestinationConfig, { broker: 'sqs' }>, steps: Steps): Promise<void> {
  const sqs = cliSqsClient(destination)
  try {
    await ensureQueueWithDlq(sqs, queueNameOf(destination.queueUrl), steps)
  } catch (err) {
    throw awsFailure(err)
  } finally {
    sqs.destroy()
  }
}
