import './aws-env.js'
import { createHash } from 'node:crypto'
import { createServer, request } from 'node:http'
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs'
import { startFauxqs } from 'fauxqs'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { OTHER_TENANT, TENANT, exampleOf, post, postBatch, testConfig } from '../helper.js'
import { HoldingProxy } from './holding-proxy.js'

// SQS through the fauxqs emulator, started here, spoken to by the real AWS SDK over HTTP.
const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false })
t.teardown(() => fauxqs.stop())
process.env.AWS_ENDPOINT_URL_SQS = fauxqs.address
const sqs = new SQSClient({})
t.teardown(() => sqs.destroy())
let n = 0
const queue = (fifo: boolean, attributes: Record<string, string> = {}) =>
  fauxqs.createQueue(`evg-test-${++n}${fifo ? '.fifo' : ''}`, {
    attributes: { ...(fifo ? { FifoQueue: 'true' } : {}), ...attributes }
  }).queueUrl

async function drain (queueUrl: string, expected: number): Promise<Message[]> {
  const got: Message[] = []
  for (let empty = 0; got.length < expected || empty < 1;) {
    const res = await sqs.send(new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: got.length < expected ? 1 : 0,
      MessageAttributeNames: ['All'],
      MessageSystemAttributeNames: ['All'],
      AttributeNames: ['All']
    }))
    if ((res.Messages ?? []).length === 0) empty++
    got.push(...(res.Messages ?? []))
    // FIFO hands out the next message of a group only once the previous one is deleted
    for (const m of res.Messages ?? []) await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }))
    if (empty > 3) break
  }
  return got
}

async function gateway (t: Test, queueUrl: string, env: Record<string, string> = {}) {
  const app = await buildApp(testConfig(t, { BROKER: 'sqs', SQS_QUEUE_URL: queueUrl, ...env }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

t.test('standard queue: every catalog type arrives as its envelope with type, tenant and correlation attributes', async t => {
  const url = queue(false)
  const app = await gateway(t, url)
  const ids = new Map<string, string>()
  for (const entry of BUILTIN_ENTRIES) {
    const res = await app.inject(post(entry.type, exampleOf(entry.type), { 'x-correlation-id': 'corr-sqs', 'x-user-id': 'user-1' }))
    t.equal(res.statusCode, 202, entry.type)
    ids.set(res.json().id, entry.type)
  }
  const messages = await drain(url, BUILTIN_ENTRIES.length)
  t.equal(messages.length, BUILTIN_ENTRIES.length)
  for (const m of messages) {
    const env = JSON.parse(m.Body as string)
    t.equal(ids.get(env.id), env.type, 'one of ours')
    t.match(env, { specversion: '1.0', tenantid: TENANT, correlationid: 'corr-sqs', data: exampleOf(env.type) })
    t.match(m.MessageAttributes, {
      'event-type': { StringValue: env.type },
      'tenant-id': { StringValue: TENANT },
      'correlation-id': { StringValue: 'corr-sqs' },
      'user-id': { StringValue: 'user-1' }
    })
  }
  t.equal((await app.inject('/health/ready')).statusCode, 200)
})

t.test('FIFO: the same call twice is one message; group = tenant; dedupe id = sha256(tenant:type:call_id)', async t => {
  const url = queue(true)
  const app = await gateway(t, url)
  const data = exampleOf('survey.completed')
  const first = await app.inject(post('survey.completed', data))
  const second = await app.inject(post('survey.completed', data))
  t.equal(first.statusCode, 202)
  t.equal(second.statusCode, 202, 'a duplicate is accepted (SQS drops it)')
  await app.inject(post('survey.completed', data, { 'x-tenant-id': OTHER_TENANT }))
  const messages = await drain(url, 2)
  const dedupe = (tenant: string) => createHash('sha256').update(`${tenant}:survey.completed:${data.call_id as string}`).digest('hex')
  t.equal(messages.length, 2, 'the repeat is dropped; another tenant\'s event with the same call_id is not')
  const byGroup = Object.fromEntries(messages.map(m => [m.Attributes?.MessageGroupId, m.Attributes?.MessageDeduplicationId]))
  t.same(byGroup, { [TENANT]: dedupe(TENANT), [OTHER_TENANT]: dedupe(OTHER_TENANT) })
})

t.test(
  'FIFO: without a dedupe field, the Idempotency-Key (else the event id) decides; a catalog group field replaces the tenant',
  async t => {
    const url = queue(true)
    const schema = {
      type: 'object',
      additionalProperties: false,
      required: ['order_id'],
      properties: { order_id: { type: 'string' } },
      examples: [{ order_id: 'o-1' }]
    }
    const dir = t.testdir({ 'order.json': JSON.stringify({ type: 'order.placed', description: 'x', groupKey: 'order_id', schema }) })
    const app = await gateway(t, url, { EVENT_CATALOG_DIR: dir })
    const data = exampleOf('call.ended')
    await app.inject(post('call.ended', data, { 'idempotency-key': 'k1' }))
    await app.inject(post('call.ended', data))
    await app.inject(post('call.ended', data))
    await app.inject(post('order.placed', { order_id: 'o-1' }))
    const messages = await drain(url, 4)
    t.equal(messages.length, 4, 'events without a dedupe key are never merged')
    const order = messages.find(m => JSON.parse(m.Body as string).type === 'order.placed')
    t.equal(order?.Attributes?.MessageGroupId, 'o-1')
  }
)

t.test('batch ingest: SendMessageBatch in chunks of 10; an entry SQS refuses is a per-event 502', async t => {
  const url = queue(false, { MaximumMessageSize: '2048' })
  const app = await gateway(t, url)
  const events = Array.from({ length: 25 }, (_, i) => ({
    type: 'call.ended',
    data: { ...exampleOf('call.ended'), call_id: `c-${i}`, transcript: i === 7 ? 'x'.repeat(3000) : null }
  }))
  const res = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: JSON.stringify({ events })
  })
  t.equal(res.statusCode, 207)
  const results = res.json().results
  t.match(
    results[7],
    { error: { code: 'EVG_BROKER_REJECTED', reason: 'sender_fault' } },
    'the queue refused the oversized entry: not retried'
  )
  t.equal(results.filter((r: { status?: string }) => r.status === 'published').length, 24)
  const messages = await drain(url, 24)
  t.equal(messages.length, 24)
})

/**
 * fauxqs behind a proxy that records each call the SDK makes (its action and entries), with
 * AWS_ENDPOINT_URL_SQS pointing at it for the test.
 */
async function countedCalls (t: Test) {
  const calls: { action: string, entries: number }[] = []
  const target = new URL(fauxqs.address)
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const action = String(req.headers['x-amz-target'] ?? '').replace('AmazonSQS.', '')
      if (action.startsWith('SendMessage')) {
        const { Entries } = JSON.parse(body.toString() || '{}') as { Entries?: unknown[] }
        calls.push({ action, entries: Entries?.length ?? 1 })
      }
      const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, answer => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      up.on('error', () => res.destroy())
      up.end(body)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  process.env.AWS_ENDPOINT_URL_SQS = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  t.teardown(() => {
    process.env.AWS_ENDPOINT_URL_SQS = fauxqs.address
    server.close()
  })
  return calls
}

t.test('200 single events at once to one queue share calls: fewer than 60, each event delivered once', async t => {
  const calls = await countedCalls(t)
  const url = queue(false)
  const app = await gateway(t, url)
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) =>
    app.inject(post('call.ended', { ...exampleOf('call.ended'), call_id: `c-${i}` }))))
  t.same(answers.map(r => r.statusCode), answers.map(() => 202), 'every request 202')
  t.ok(calls.length < 60, `${calls.length} calls for 200 events`)
  t.equal(calls.reduce((n, c) => n + c.entries, 0), 200, 'every event in exactly one call')
  t.ok(calls.every(c => c.entries <= 10), 'at most 10 a call')
  const messages = await drain(url, 200)
  const ids = messages.map(m => JSON.parse(m.Body as string).id as string)
  t.equal(ids.length, 200)
  t.same(new Set(ids), new Set(answers.map(r => r.json().id as string)), 'the 200 answered ids, each once')
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, new RegExp(`gateway_aws_call_entries_count\\{destination="sqs",broker="sqs"\\} ${calls.length}\\b`), 'calls counted')
  t.match(metrics, /gateway_aws_call_entries_sum\{destination="sqs",broker="sqs"\} 200\b/)
})

t.test('an entry SQS refuses in a shared call fails only its own request; the others are 202', async t => {
  const calls = await countedCalls(t)
  const url = queue(false, { MaximumMessageSize: '2048' })
  const app = await gateway(t, url)
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    app.inject(post('call.ended', { ...exampleOf('call.ended'), call_id: `c-${i}`, transcript: i === 7 ? 'x'.repeat(3000) : null }))))
  t.equal(answers[7]?.statusCode, 502)
  t.match(answers[7]?.json(), { code: 'EVG_BROKER_REJECTED', reason: 'sender_fault' })
  t.equal(answers.filter(r => r.statusCode === 202).length, 19, 'the other 19 published')
  t.ok(calls.some(c => c.action === 'SendMessageBatch' && c.entries > 1), 'they shared calls')
  t.ok(calls.length < 20, `${calls.length} calls`)
  t.equal((await drain(url, 19)).length, 19)
})

t.test('FIFO under concurrency: each group\'s events arrive in the order they were sent', async t => {
  const url = queue(true)
  const app = await gateway(t, url)
  const tenants = [TENANT, OTHER_TENANT, '1f0e5a52-7c1d-4d4e-9b8a-3e2f1d0c9b8a', '2a3b4c5d-6e7f-4a1b-8c2d-3e4f5a6b7c8d']
  const answers = await Promise.all(tenants.map(tenant => app.inject(postBatch(
    Array.from({ length: 30 }, (_, i) => ({ type: 'call.ended', data: { ...exampleOf('call.ended'), call_id: `c-${i}` } })),
    { 'x-tenant-id': tenant }
  ))))
  t.same(answers.map(r => r.statusCode), [202, 202, 202, 202])
  const messages = await drain(url, 120)
  t.equal(messages.length, 120)
  for (const tenant of tenants) {
    const seq = messages.filter(m => m.Attributes?.MessageGroupId === tenant).map(m => JSON.parse(m.Body as string).data.call_id as string)
    t.same(seq, Array.from({ length: 30 }, (_, i) => `c-${i}`), 'in order, each once')
  }
})

t.test('a lone event at a low rate goes at once, in a call of its own', async t => {
  const calls = await countedCalls(t)
  const url = queue(false)
  const app = await gateway(t, url)
  for (let i = 0; i < 5; i++) {
    t.equal((await app.inject(post('call.ended', { ...exampleOf('call.ended'), call_id: `c-${i}` }))).statusCode, 202)
    t.equal(calls.length, i + 1, 'sent before the answer, alone')
  }
  t.same(calls.map(c => c.action), Array(5).fill('SendMessage'))
})

t.test('size is checked before sending: 413, nothing sent', async t => {
  const url = queue(false)
  const app = await gateway(t, url, { SQS_MAX_MESSAGE_BYTES: '2048' })
  const res = await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: 'x'.repeat(3000) }))
  t.equal(res.statusCode, 413)
  t.match(res.json(), { code: 'EVG_TOO_LARGE', reason: 'too_large' })
  t.same(await drain(url, 0), [])
})

t.test('a queue that does not exist: readiness 503, publishes refused with 502', async t => {
  const app = await gateway(t, `${fauxqs.address}/000000000000/no-such-queue`)
  t.equal((await app.inject('/health/ready')).statusCode, 503)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 502)
  t.equal(res.json().code, 'EVG_BROKER_REJECTED')
})

t.test('an unreachable endpoint is a 503 with Retry-After', async t => {
  process.env.AWS_ENDPOINT_URL_SQS = 'http://127.0.0.1:9'
  t.teardown(() => { process.env.AWS_ENDPOINT_URL_SQS = fauxqs.address })
  const app = await gateway(t, `${fauxqs.address}/000000000000/q`)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'EVG_BROKER_UNAVAILABLE', reason: 'unreachable' })
  t.ok(res.headers['retry-after'])
  t.equal((await app.inject('/health/ready')).statusCode, 503)
})

t.test('an explicit AWS_ENDPOINT_URL_SQS wins over the queue URL\'s host', async t => {
  // LocalStack-style URLs name a host that only resolves inside the emulator's own network: sent
  // there, the call would fail as unreachable (503). It goes to the emulator at
  // AWS_ENDPOINT_URL_SQS instead, which answers (fauxqs keys queues by their full URL, so: no
  // such queue).
  const app = await gateway(t, 'http://sqs.eu-central-1.localhost.localstack.cloud:4566/000000000000/elsewhere')
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.match(res.json(), { status: 502, reason: 'queue_does_not_exist' }, 'the emulator answered')
})

t.test('no credentials: the gateway refuses to start, saying why', async t => {
  const saved = {
    id: process.env.AWS_ACCESS_KEY_ID,
    secret: process.env.AWS_SECRET_ACCESS_KEY,
    profile: process.env.AWS_PROFILE,
    file: process.env.AWS_SHARED_CREDENTIALS_FILE,
    config: process.env.AWS_CONFIG_FILE
  }
  delete process.env.AWS_ACCESS_KEY_ID
  delete process.env.AWS_SECRET_ACCESS_KEY
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/credentials'
  process.env.AWS_CONFIG_FILE = '/nonexistent/config'
  t.teardown(() => {
    process.env.AWS_ACCESS_KEY_ID = saved.id
    process.env.AWS_SECRET_ACCESS_KEY = saved.secret
    process.env.AWS_SHARED_CREDENTIALS_FILE = saved.file ?? ''
    process.env.AWS_CONFIG_FILE = saved.config ?? ''
    if (saved.file === undefined) delete process.env.AWS_SHARED_CREDENTIALS_FILE
    if (saved.config === undefined) delete process.env.AWS_CONFIG_FILE
  })
  const app = await buildApp(testConfig(t, { BROKER: 'sqs', SQS_QUEUE_URL: queue(false) }))
  t.teardown(() => app.close())
  await t.rejects(
    async () => { await app.ready() },
    { name: 'ConfigError', message: /AWS credentials: the SDK's credentials chain found none for SQS/ }
  )
})

t.test('SQS stops answering (bytes held): 503 by the deadline, readiness answers, sockets freed, delivery back at once', async t => {
  const target = new URL(fauxqs.address)
  const proxy = await HoldingProxy.start(t, { host: target.hostname, port: Number(target.port) })
  process.env.AWS_ENDPOINT_URL_SQS = proxy.url
  t.teardown(() => { process.env.AWS_ENDPOINT_URL_SQS = fauxqs.address })
  const queueUrl = queue(false)
  const sync = await gateway(t, queueUrl, { PUBLISH_TIMEOUT_MS: '1000' })
  const spooled = await gateway(t, queueUrl, { PUBLISH_TIMEOUT_MS: '1000', DELIVERY_MODE: 'spool' })
  t.equal((await sync.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202, 'through the proxy')

  proxy.hold()
  // Answers at all: before the deadlines, the SDK waited for a socket timeout of 15 minutes.
  const within = <T>(what: Promise<T>, ms: number) => Promise.race([
    what,
    new Promise<'no answer'>(resolve => setTimeout(resolve, ms, 'no answer'))
  ])
  const five = Array.from({ length: 5 }, () => sync.inject(post('call.ended', exampleOf('call.ended'))))
  const publishes = await within(Promise.all(five), 15_000)
  if (publishes === 'no answer') throw new Error('publishes hung while SQS did not answer')
  t.same(publishes.map(r => r.statusCode), [503, 503, 503, 503, 503], 'each publish a 503')
  t.match(publishes[0]?.json(), { code: 'EVG_BROKER_UNAVAILABLE', reason: 'timeout' })
  const ready = await within(sync.inject('/health/ready'), 15_000)
  if (ready === 'no answer') throw new Error('readiness hung while SQS did not answer')
  t.equal(ready.statusCode, 503, 'readiness answers: down')
  t.match(ready.json(), { destinations: [{ up: false }] })
  const metrics = await within(sync.inject('/metrics'), 15_000)
  t.not(metrics, 'no answer', 'metrics answer')
  const spool = async () => (await spooled.inject(post('call.ended', exampleOf('call.ended')))).json().id as string
  const queued = await Promise.all(Array.from({ length: 5 }, spool))
  t.equal(queued.length, 5, 'spool mode keeps accepting')
  // The SDK destroys each aborted request's socket: none stays with the silent network (the relay
  // and its probes keep opening new ones, each closed at its deadline: 1 s, a probe's 2 s).
  let oldest = 0
  for (const end = Date.now() + 10_000; Date.now() < end;) {
    oldest = Math.max(oldest, proxy.oldestHeldMs)
    await new Promise(resolve => setTimeout(resolve, 100)) // watching another party's sockets
  }
  t.ok(oldest < 5000, `no request to the silent endpoint left open past its deadline (the longest: ${oldest} ms)`)

  proxy.pass()
  let status = 0
  for (const stop = Date.now() + 10_000; status !== 202 && Date.now() < stop;) {
    status = (await sync.inject(post('call.ended', exampleOf('call.ended')))).statusCode
    if (status !== 202) await new Promise(resolve => setTimeout(resolve, 200)) // a client retrying
  }
  t.equal(status, 202, 'published again once the network is back')
  const bodies = (await drain(queueUrl, 7)).map(m => JSON.parse(m.Body ?? '{}') as { id: string })
  t.same(queued.filter(id => !bodies.some(b => b.id === id)), [], 'the events spooled meanwhile delivered')
})
