import { CreateEventBusCommand, DescribeEventBusCommand, DescribeRuleCommand, EventBridgeClient, ListTargetsByRuleCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge'
import { CreateQueueCommand, GetQueueAttributesCommand, GetQueueUrlCommand, SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs'
import type { Config } from '../config.js'

export interface AwsPlan {
  /** Main queue name; `.fifo` makes both queues FIFO. */
  queue: string
  /** Also the bus, a rule matching EVENT_SOURCE and the queue as its target. */
  eventbridge: boolean
}

export interface Step { what: string, created: boolean }

const notFound = (err: unknown) => /NonExistentQueue|QueueDoesNotExist|ResourceNotFound/.test(String((err as { name?: string }).name))

/** Queue name from SQS_QUEUE_URL, else one derived from EVENT_SOURCE. */
export function queueNameFor (config: Config, fifo: boolean): string {
  const fromUrl = config.SQS_QUEUE_URL?.split('/').at(-1)
  if (fromUrl) return fromUrl
  const base = config.EVENT_SOURCE.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 60)
  return `${base}-events${fifo ? '.fifo' : ''}`
}

/**
 * Idempotent AWS topology: queue + DLQ with a redrive policy; with EventBridge, the bus, a rule
 * matching EVENT_SOURCE, the queue as its target and the queue policy that lets the rule send.
 * Each step looks first and only creates what is missing.
 */
export async function provisionAws (config: Config, plan: AwsPlan, say: (step: Step) => void): Promise<void> {
  const sqs = new SQSClient({ maxAttempts: 3 })
  const events = new EventBridgeClient({ maxAttempts: 3 })
  try {
    const fifo = plan.queue.endsWith('.fifo')
    const dlqName = fifo ? `${plan.queue.slice(0, -5)}-dlq.fifo` : `${plan.queue}-dlq`
    const fifoAttrs: Record<string, string> = fifo ? { FifoQueue: 'true', DeduplicationScope: 'messageGroup', FifoThroughputLimit: 'perMessageGroupId' } : {}

    const ensureQueue = async (name: string, attributes: Record<string, string>): Promise<{ url: string, arn: string }> => {
      let url: string | undefined
      try {
        url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl
      } catch (err) {
        if (!notFound(err)) throw err
      }
      const created = url === undefined
      if (created) url = (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl
      const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }))).Attributes?.QueueArn as string
      say({ what: `queue ${name}${fifo ? ' (FIFO)' : ''}`, created })
      return { url: url as string, arn }
    }

    const dlq = await ensureQueue(dlqName, { ...fifoAttrs, MessageRetentionPeriod: '1209600' })
    const main = await ensureQueue(plan.queue, fifoAttrs)
    const redrive = JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: '5' })
    const current = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: main.url, AttributeNames: ['RedrivePolicy'] }))).Attributes?.RedrivePolicy
    const hasRedrive = current !== undefined && (JSON.parse(current) as { deadLetterTargetArn?: string }).deadLetterTargetArn === dlq.arn
    if (!hasRedrive) await sqs.send(new SetQueueAttributesCommand({ QueueUrl: main.url, Attributes: { RedrivePolicy: redrive } }))
    say({ what: `redrive ${plan.queue} -> ${dlqName} after 5 receives`, created: !hasRedrive })

    if (!plan.eventbridge) return
    const bus = config.EVENTBRIDGE_BUS_NAME
    if (bus !== 'default') {
      let exists = true
      try {
        await events.send(new DescribeEventBusCommand({ Name: bus }))
      } catch (err) {
        if (!notFound(err)) throw err
        exists = false
      }
      if (!exists) await events.send(new CreateEventBusCommand({ Name: bus }))
      say({ what: `event bus ${bus}`, created: !exists })
    }
    const ruleName = `evg-${plan.queue.replace(/\.fifo$/, '')}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64)
    const pattern = JSON.stringify({ source: [config.EVENT_SOURCE] })
    let ruleArn: string | undefined
    let samePattern = false
    try {
      const rule = await events.send(new DescribeRuleCommand({ Name: ruleName, EventBusName: bus }))
      ruleArn = rule.Arn
      samePattern = rule.EventPattern === pattern
    } catch (err) {
      if (!notFound(err)) throw err
    }
    if (ruleArn === undefined || !samePattern) ruleArn = (await events.send(new PutRuleCommand({ Name: ruleName, EventBusName: bus, EventPattern: pattern, State: 'ENABLED', Description: `event-gateway: ${config.EVENT_SOURCE} to ${plan.queue}` }))).RuleArn
    say({ what: `rule ${ruleName} on ${bus} matching source ${config.EVENT_SOURCE}`, created: !samePattern })
    const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: ruleName, EventBusName: bus }))).Targets ?? []
    const hasTarget = targets.some(tg => tg.Arn === main.arn)
    if (!hasTarget) {
      await events.send(new PutTargetsCommand({ Rule: ruleName, EventBusName: bus, Targets: [{ Id: 'evg-queue', Arn: main.arn, ...(fifo ? { SqsParameters: { MessageGroupId: 'event-gateway' } } : {}) }] }))
    }
    say({ what: `target ${plan.queue} of rule ${ruleName}`, created: !hasTarget })
    const policy = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: main.url, AttributeNames: ['Policy'] }))).Attributes?.Policy ?? ''
    const allows = policy.includes(ruleArn as string)
    if (!allows) {
      await sqs.send(new SetQueueAttributesCommand({
        QueueUrl: main.url,
        Attributes: {
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [{ Sid: 'event-gateway-rule', Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: 'sqs:SendMessage', Resource: main.arn, Condition: { ArnEquals: { 'aws:SourceArn': ruleArn } } }]
          })
        }
      }))
    }
    say({ what: `queue policy: the rule may send to ${plan.queue}`, created: !allows })
  } finally {
    sqs.destroy()
    events.destroy()
  }
}
