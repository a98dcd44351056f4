import { CreateEventBusCommand, DescribeEventBusCommand, DescribeRuleCommand, EventBridgeClient, ListTargetsByRuleCommand, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge'
import { GetQueueAttributesCommand, SetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs'
import { awsClientConfig } from '../brokers/aws/credentials.js'
import type { Destination, Routing } from '../routing/index.js'
import { awsFailure, cliSqsClient, ensureQueueWithDlq, notFound, queueNameOf, type ProvisionedQueue } from './provision-sqs.js'
import type { Steps } from './steps.js'

type EventBridgeDestination = Extract<Destination, { broker: 'eventbridge' }>

export function cliEventBridgeClient (opts: { region?: string, endpoint?: string }): EventBridgeClient {
  return new EventBridgeClient({ maxAttempts: 3, ...awsClientConfig(opts) })
}

/** The bus, unless it is `default` (which always exists). */
export async function ensureBus (events: EventBridgeClient, bus: string, steps: Steps): Promise<void> {
  if (bus === 'default') return
  let exists = true
  try {
    await events.send(new DescribeEventBusCommand({ Name: bus }))
  } catch (err) {
    if (!notFound(err)) throw err
    exists = false
  }
  if (!exists) await events.send(new CreateEventBusCommand({ Name: bus }))
  steps.say(`event bus ${bus}`, !exists)
}

export function ruleNameFor (queue: string): string {
  return `evg-${queue.replace(/\.fifo$/, '')}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64)
}

/**
 * The rule `evg-<queue>` on the bus matching `sources`, the queue as its target, and the queue
 * policy that lets the rule send. One rule per bus and queue: every destination publishing to
 * that bus is one of its sources, so provisioning one destination never drops another's.
 */
export async function ensureRuleToQueue (events: EventBridgeClient, sqs: SQSClient, bus: string, sources: readonly string[], queue: ProvisionedQueue, steps: Steps): Promise<void> {
  const ruleName = ruleNameFor(queue.name)
  const pattern = JSON.stringify({ source: sources })
  let ruleArn: string | undefined
  let samePattern = false
  try {
    const rule = await events.send(new DescribeRuleCommand({ Name: ruleName, EventBusName: bus }))
    ruleArn = rule.Arn
    samePattern = rule.EventPattern === pattern
  } catch (err) {
    if (!notFound(err)) throw err
  }
  if (ruleArn === undefined || !samePattern) {
    ruleArn = (await events.send(new PutRuleCommand({ Name: ruleName, EventBusName: bus, EventPattern: pattern, State: 'ENABLED', Description: `event-gateway: ${sources.join(', ')} to ${queue.name}` }))).RuleArn
  }
  steps.say(`rule ${ruleName} on ${bus} matching source ${sources.join(', ')}`, !samePattern)
  const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: ruleName, EventBusName: bus }))).Targets ?? []
  const hasTarget = targets.some(tg => tg.Arn === queue.arn)
  if (!hasTarget) {
    await events.send(new PutTargetsCommand({ Rule: ruleName, EventBusName: bus, Targets: [{ Id: 'evg-queue', Arn: queue.arn, ...(queue.fifo ? { SqsParameters: { MessageGroupId: 'event-gateway' } } : {}) }] }))
  }
  steps.say(`target ${queue.name} of rule ${ruleName}`, !hasTarget)
  const policy = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['Policy'] }))).Attributes?.Policy ?? ''
  const allows = policy.includes(ruleArn as string)
  if (!allows) {
    // Other statements stay: rules on other buses (other destinations) may send to this queue too.
    const sid = `event-gateway-rule-${bus}`
    const others = policy === '' ? [] : ((JSON.parse(policy) as { Statement?: { Sid?: string }[] }).Statement ?? []).filter(s => s.Sid !== sid)
    const statement = { Sid: sid, Effect: 'Allow', Principal: { Service: 'events.amazonaws.com' }, Action: 'sqs:SendMessage', Resource: queue.arn, Condition: { ArnEquals: { 'aws:SourceArn': ruleArn } } }
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queue.url, Attributes: { Policy: JSON.stringify({ Version: '2012-10-17', Statement: [...others, statement] }) } }))
  }
  steps.say(`queue policy: the rule may send to ${queue.name}`, !allows)
}

/** The sources of every EventBridge destination of the routing that publishes to the same bus. */
export function sourcesOnBus (routing: Routing, destination: EventBridgeDestination): string[] {
  const same = (d: Destination): d is EventBridgeDestination => d.broker === 'eventbridge' && d.busName === destination.busName && d.region === destination.region && d.endpoint === destination.endpoint
  return [...new Set(routing.destinations.filter(same).map(d => d.envelopeOptions.source))]
}

/**
 * An EventBridge destination: its bus and, when `queueUrl` (SQS_QUEUE_URL) names the queue its
 * events should land in, that queue with its DLQ, the rule, the target and the queue policy. The
 * queue is in the destination's region; the endpoint the destination names is EventBridge's only.
 */
export async function provisionEventBridge (destination: EventBridgeDestination, sources: readonly string[], queueUrl: string | undefined, steps: Steps): Promise<void> {
  const events = cliEventBridgeClient(destination)
  const sqs = cliSqsClient(destination.region === undefined ? {} : { region: destination.region })
  try {
    await ensureBus(events, destination.busName, steps)
    if (queueUrl === undefined) {
      console.log('  (SQS_QUEUE_URL is not set: no rule to a queue; set it to the queue the bus should feed)')
      return
    }
    const queue = await ensureQueueWithDlq(sqs, queueNameOf(queueUrl), steps)
    await ensureRuleToQueue(events, sqs, destination.busName, sources, queue, steps)
  } catch (err) {
    throw awsFailure(err)
  } finally {
    events.destroy()
    sqs.destroy()
  }
}
