// npm run verify [-- --gateway http://127.0.0.1:3000 --type batch.processing.completed --timeout 30]
// End-to-end check of the AWS flow, as seed 001's verifier: publish a test event through the
// gateway, poll SQS_QUEUE_URL until it arrives (directly, or wrapped by an EventBridge rule),
// check the envelope, delete the test message. Exit codes: 0 verified, 1 bad config,
// 2 the gateway did not accept the event, 3 not received in time, 4 the envelope is wrong,
// 5 the test message could not be deleted.
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs'
import { BUILTIN_ENTRIES, firstExample } from '../catalog/index.js'
import { cliConfig } from './common.js'

const { values } = parseArgs({ options: { gateway: { type: 'string' }, type: { type: 'string', default: 'batch.processing.completed' }, timeout: { type: 'string', default: '30' }, tenant: { type: 'string' } } })
const config = await cliConfig()
const step = (n: number, text: string) => console.log(`[${n}/4] ${text}`)
const fail = (code: number, text: string): never => {
  console.error(`FAILED: ${text}`)
  process.exit(code)
}
if (config.SQS_QUEUE_URL === undefined) fail(1, 'SQS_QUEUE_URL must name the queue the events arrive in')
const entry = BUILTIN_ENTRIES.find(e => e.type === values.type) ?? fail(1, `--type: no built-in event type '${values.type}'`)
const gateway = values.gateway ?? `http://127.0.0.1:${config.PORT}`
const tenant = values.tenant ?? config.MOCK_TENANT_ID ?? randomUUID()
const correlationId = `verify-${randomUUID()}`
const data = firstExample(entry)

step(1, `POST ${gateway}/v1/events/${entry.type} (tenant ${tenant}, correlation ${correlationId})`)
let eventId = ""
try {
  const res = await fetch(`${gateway}/v1/events/${entry.type}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': tenant, 'x-correlation-id': correlationId }, body: JSON.stringify(data) })
  const body = await res.json() as { id?: string, status?: string, code?: string, detail?: string }
  if (res.status !== 202 || body.id === undefined) fail(2, `the gateway answered ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`)
  eventId = body.id as string
  console.log(`      accepted: id ${eventId}, status ${body.status}`)
} catch (err) {
  fail(2, `the gateway is not reachable at ${gateway}: ${(err as Error).message}`)
}

const queueUrl = config.SQS_QUEUE_URL as string
const seconds = Number(values.timeout)
step(2, `polling ${queueUrl} for up to ${seconds} s`)
const sqs = new SQSClient({})
const until = Date.now() + seconds * 1000
let found: { envelope: Record<string, unknown>, receipt: string } | undefined
while (found === undefined && Date.now() < until) {
  const res = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: Math.max(0, Math.min(5, Math.ceil((until - Date.now()) / 1000))), VisibilityTimeout: 0 }))
  for (const m of res.Messages ?? []) {
    let parsed: Record<string, unknown>
    try {
      parsed = JSON.parse(m.Body ?? '') as Record<string, unknown>
    } catch {
      continue
    }
    // Directly from BROKER=sqs, or an EventBridge event whose detail is the envelope.
    const envelope = (parsed.detail !== undefined && typeof parsed.detail === 'object' ? parsed.detail : parsed) as Record<string, unknown>
    if (envelope.id === eventId) found = { envelope, receipt: m.ReceiptHandle as string }
  }
}
if (found === undefined) fail(3, `event ${eventId} did not arrive within ${seconds} s`)
const { envelope, receipt } = found as { envelope: Record<string, unknown>, receipt: string }
console.log('      received')

step(3, 'checking the envelope')
const problems: string[] = []
const expect = (field: string, want: unknown) => { if (JSON.stringify(envelope[field]) !== JSON.stringify(want)) problems.push(`${field} is ${JSON.stringify(envelope[field])}, expected ${JSON.stringify(want)}`) }
expect('specversion', '1.0')
expect('type', entry.type)
expect('source', config.EVENT_SOURCE)
expect('tenantid', tenant)
expect('correlationid', correlationId)
expect('data', data)
for (const f of ['time', 'datacontenttype', 'dataschema']) if (typeof envelope[f] !== 'string') problems.push(`${f} is missing`)
if (problems.length > 0) fail(4, `the envelope is not what was sent:\n  ${problems.join('\n  ')}`)
console.log('      specversion, type, source, tenant, correlation and data as sent')

step(4, 'deleting the test message')
try {
  await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: receipt }))
} catch (err) {
  fail(5, `could not delete the test message: ${(err as Error).message}`)
}
sqs.destroy()
console.log(`verified: ${entry.type} went from the gateway to ${queueUrl}`)
