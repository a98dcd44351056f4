import { ListRulesCommand, ListTargetsByRuleCommand } from '@aws-sdk/client-eventbridge'
import { GetQueueUrlCommand } from '@aws-sdk/client-sqs'
import { asError } from '../errors.js'
import { jsonObject } from './common.js'
import { cliEventBridgeClient } from './provision-eventbridge.js'
import { answered, cliSqsClient } from './provision-sqs.js'
import { CliFailure } from './failure.js'

/** Whether an event pattern lets through this source and detail type (exact values, as provision writes them). */
function lets (pattern: string | undefined, source: string, detailType: string): boolean {
  let p: Record<string, unknown>
  try {
    p = jsonObject(JSON.parse(pattern ?? '{}'))
  } catch {
    return false
  }
  const allows = (key: string, value: string) => {
    const values = p[key]
    return values === undefined || (Array.isArray(values) && values.includes(value))
  }
  return Object.keys(p).every(k => k === 'source' || k === 'detail-type') && allows('source', source) && allows('detail-type', detailType)
}

/**
 * The SQS queue a rule on the bus delivers this source and detail type to, for verify without
 * SQS_QUEUE_URL: the first rule that matches them and has an SQS queue as target (as `npm run
 * provision` sets up from the queues file's `rules`).
 */
export async function ruleQueueUrl (
  bus: string, client: { region?: string, endpoint?: string }, source: string, detailType: string
): Promise<string> {
  const events = cliEventBridgeClient(client)
  const sqs = cliSqsClient(client.region === undefined ? {} : { region: client.region })
  try {
    const rules = (await events.send(new ListRulesCommand({ EventBusName: bus }))).Rules ?? []
    for (const rule of rules.filter(r => lets(r.EventPattern, source, detailType))) {
      const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: rule.Name, EventBusName: bus }))).Targets ?? []
      const arn = targets.map(tg => tg.Arn ?? '').find(a => a.startsWith('arn:aws:sqs:'))
      if (arn === undefined) continue
      const [, , , , account, name] = arn.split(':')
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account }))
      return answered(QueueUrl, 'QueueUrl')
    }
  } catch (err) {
    const e = asError(err)
    throw new CliFailure(3, `cannot find the rules of bus ${bus} (to find the queue its events reach): ${e.name}: ${e.message}`)
  } finally {
    events.destroy()
    sqs.destroy()
  }
  throw new CliFailure(1, `no rule on bus ${bus} sends source ${source}, detail-type ${detailType} to an SQS queue: ` +
    'name one in the queues file\'s rules (npm run provision -- --queues FILE), or set SQS_QUEUE_URL to the queue the bus feeds')
}
