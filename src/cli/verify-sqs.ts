import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs'
import { asError } from '../errors.js'
import { jsonObject } from './common.js'
import { cliSqsClient } from './provision-sqs.js'
import { CliFailure } from './failure.js'
import type { Received, Watcher } from './verify-types.js'

/**
 * Polls a queue for the test event: the envelope itself (an SQS destination), or, with `rule`,
 * EventBridge's event around it (`detail`) as the rule delivered it.
 */
export async function watchSqs (
  queueUrl: string, client: { region?: string, endpoint?: string }, rule: { bus: string, source: string, detailType: string } | undefined
): Promise<Watcher> {
  const sqs = cliSqsClient(client)
  const where = rule === undefined ? `queue ${queueUrl}` : `queue ${queueUrl} through bus ${rule.bus}`
  return {
    where,
    async receive (marks, until) {
      while (Date.now() < until) {
        const res = await sqs.send(new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: Math.max(0, Math.min(5, Math.ceil((until - Date.now()) / 1000))),
          // Others' messages stay visible to their consumers; only ours is deleted.
          VisibilityTimeout: 0,
          MessageAttributeNames: ['All']
        })).catch((err: unknown) => {
          const e = asError(err)
          throw new CliFailure(3, `cannot read ${queueUrl}: ${e.name}: ${e.message}`)
        })
        for (const m of res.Messages ?? []) {
          // The marks are unique: a body that contains one is ours, whatever its shape.
          if (!marks.some(mark => m.Body?.includes(mark) === true)) continue
          let body: unknown
          try {
            body = JSON.parse(m.Body ?? '')
          } catch {
            body = {}
          }
          const problems: string[] = []
          let envelope = body
          if (rule !== undefined) {
            // EventBridge's event, with the envelope as its detail
            const { detail, source, 'detail-type': detailType } = jsonObject(body)
            envelope = typeof detail === 'object' && detail !== null ? detail : {}
            if (source !== rule.source) {
              problems.push(`EventBridge source is ${JSON.stringify(source)}, expected ${JSON.stringify(rule.source)}`)
            }
            if (detailType !== rule.detailType) {
              problems.push(`EventBridge detail-type is ${JSON.stringify(detailType)}, expected ${JSON.stringify(rule.detailType)}`)
            }
          }
          const tenant = m.MessageAttributes?.['tenant-id']?.StringValue
          const received: Received = {
            envelope,
            problems,
            remove: async () => {
              await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }))
              return 'deleted'
            }
          }
          if (rule === undefined) received.transportTenant = { where: 'SQS attribute tenant-id', value: tenant }
          return received
        }
      }
      return undefined
    },
    async close () {
      sqs.destroy()
    }
  }
}
