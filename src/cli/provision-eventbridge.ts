import {
  CreateEventBusCommand, DescribeEventBusCommand, DescribeRuleCommand, EventBridgeClient, ListTargetsByRuleCommand, PutRuleCommand,
  PutTargetsCommand
} from '@aws-sdk/client-eventbridge'
import { GetQueueAttributesCommand, SetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs'
import { awsClientConfig } from '../brokers/aws/credentials.js'
import type { DestinationConfig, Routing } from '../routing/index.js'
import { isObject, jsonObject } from './common.js'
import { answered, awsFailure, cliSqsClient, ensureQueueWithDlq, notFound, queueNameOf, type ProvisionedQueue } from './provision-sqs.js'
import type { Steps } from './steps.js'

type EventBridgeDestination = Extract<DestinationConfig, { broker: 'eventbridge' }>

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

/** What a rule matches: EventBridge event patterns' `source` and, when known, `detail-type`. */
export interface RulePattern {
  source: string[]
  'detail-type'?: string[]
}

/**
 * The rule on the bus with the pattern, the queue as its target, and the queue policy that lets
 * the rule send. Looks first, changes only what differs.
 */
export async function ensureRuleToQueue (
  events: EventBridgeClient, sqs: SQSClient, bus: string, rule: { name: string, pattern: RulePattern }, queue: ProvisionedQueue,
  steps: Steps
): Promise<void> {
  const ruleName = rule.name
  const pattern = JSON.stringify(rule.pattern)
  const sources = rule.pattern.source
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
    const put = await events.send(new PutRuleCommand({
      Name: ruleName,
      EventBusName: bus,
      EventPattern: pattern,
      State: 'ENABLED',
      Description: `event-gateway: ${sources.join(', ')} to ${queue.name}`
    }))
    ruleArn = put.RuleArn
  }
  const detailTypes = rule.pattern['detail-type']
  const matching = `source ${sources.join(', ')}${detailTypes === undefined ? '' : `, detail-type ${detailTypes.join(', ')}`}`
  steps.say(`rule ${ruleName} on ${bus} matching ${matching}`, !samePattern)
  const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: ruleName, EventBusName: bus }))).Targets ?? []
  const hasTarget = targets.some(tg => tg.Arn === queue.arn)
  if (!hasTarget) {
    const target = { Id: 'evg-queue', Arn: queue.arn, ...(queue.fifo ? { SqsParameters: { MessageGroupId: 'event-gateway' } } : {}) }
    await events.send(new PutTargetsCommand({ Rule: ruleName, EventBusName: bus, Targets: [target] }))
  }
  steps.say(`target ${queue.name} of rule ${ruleName}`, !hasTarget)
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['Policy'] }))
  const policy = Attributes?.Policy ?? ''
  const arn = answered(ruleArn, 'RuleArn')
  const allows = policy.includes(arn)
  if (!allows) {
    // Other statements stay: rules on other buses (other destinations) may send to this queue too.
    const sid = `event-gateway-rule-${bus}`
    const others = policy === '' ? [] : statementsOf(policy).filter(s => !isObject(s) || s.Sid !== sid)
    const statement = {
      Sid: sid,
      Effect: 'Allow',
      Principal: { Service: 'events.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: queue.arn,
      Condition: { ArnEquals: { 'aws:SourceArn': arn } }
    }
    const document = JSON.stringify({ Version: '2012-10-17', Statement: [...others, statement] })
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queue.url, Attributes: { Policy: document } }))
  }
  steps.say(`queue policy: the rule may send to ${queue.name}`, !allows)
}

/** The statements of a queue policy (a JSON document), those of other rules included. */
function statementsOf (policy: string): unknown[] {
  const { Statement } = jsonObject(JSON.parse(policy))
  return Array.isArray(Statement) ? Statement : []
}

/** The sources every event of the destination's types is sent with (its own, or its declared message source). */
export function sourcesOf (destination: EventBridgeDestination): string[] {
  return [...new Set([...destination.formats.values()].map(f => f.fixed.source ?? destination.envelopeOptions.source))]
}

/**
 * What a rule for one destination matches: its sources and, when every one of its types has a
 * detail type known at start (the type itself, or a fixed `message.detailType`), those.
 */
export function patternOf (destination: EventBridgeDestination): RulePattern {
  const formats = [...destination.formats.entries()]
  const known = formats.every(([, f]) => !f.declared.has('detailType') || f.fixed.detailType !== undefined)
  const detailTypes = [...new Set(formats.map(([type, f]) => f.fixed.detailType ?? type))]
  return { source: sourcesOf(destination), ...(known ? { 'detail-type': detailTypes } : {}) }
}

/** The sources of every EventBridge destination of the routing that publishes to the same bus. */
export function sourcesOnBus (routing: Routing, destination: EventBridgeDestination): string[] {
  const same = (d: DestinationConfig): d is EventBridgeDestination => d.broker === 'eventbridge' &&
    d.busName === destination.busName && d.region === destination.region && d.endpoint === destination.endpoint
  return [...new Set(routing.destinations.filter(same).flatMap(sourcesOf))]
}

/**
 * An EventBridge destination: its bus; when `queueUrl` (SQS_QUEUE_URL) names the queue its events
 * should land in, that queue with its DLQ and the rule `evg-<queue>` matching every source on the
 * bus (so provisioning one destination never drops another's); and the rules the queues file
 * names for it, each to its queue, matching the destination's sources and detail types. Queues
 * are in the destination's region; the endpoint the destination names is EventBridge's only.
 */
export async function provisionEventBridge (
  destination: EventBridgeDestination, sources: readonly string[], queueUrl: string | undefined,
  rules: readonly { name: string, queue: string }[], steps: Steps
): Promise<void> {
  const events = cliEventBridgeClient(destination)
  const sqs = cliSqsClient(destination.region === undefined ? {} : { region: destination.region })
  try {
    await ensureBus(events, destination.busName, steps)
    for (const rule of rules) {
      const queue = await ensureQueueWithDlq(sqs, rule.queue, steps)
      const pattern = patternOf(destination)
      await ensureRuleToQueue(events, sqs, destination.busName, { name: rule.name, pattern }, queue, steps)
    }
    if (queueUrl !== undefined) {
      const queue = await ensureQueueWithDlq(sqs, queueNameOf(queueUrl), steps)
      const rule = { name: ruleNameFor(queue.name), pattern: { source: [...sources] } }
      await ensureRuleToQueue(events, sqs, destination.busName, rule, queue, steps)
    } else if (rules.length === 0) {
      console.log('  (no rule to a queue: name one in the queues file, or set SQS_QUEUE_URL to the queue the bus should feed)')
    }
  } catch (err) {
    throw awsFailure(err)
  } finally {
    events.destroy()
    sqs.destroy()
  }
}
