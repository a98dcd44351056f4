import './aws-env.js'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient, type Message } from '@aws-sdk/client-sqs'
import amqplib, { type ConsumeMessage } from 'amqplib'
import { startFauxqs } from 'fauxqs'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { LogCapture, TENANT, dataDir, exampleOf, post, testConfig } from '../helper.js'
import { FakeEventBridge } from './fake-eventbridge.js'
import { ConsumerProcess, PYTHON } from './consumer-process.js'
import { kafkaClientSkip, kafkaSkip, startMockCluster } from './kafka-helper.js'
import { AMQP_URL, cleanupExchange, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

// One gateway process in front of all five seed systems at once, from the example routes file:
// the Ocelot and Draft Genie exchanges on the real RabbitMQ, the survey FIFO queue on fauxqs,
// the batch bus on the local PutEvents endpoint, seed 002's topics on librdkafka's mock Kafka
// cluster, and the embedded store.
const skip = (await rabbitSkip()) || kafkaClientSkip() || (await kafkaSkip())
if (skip === false) await takeRabbitMqTurn(t)
// Seed 002's Kafka: librdkafka's mock cluster, its topics made in advance (a reader subscribes to them).
const MARTY_TOPICS = ['marty.audit.events', 'marty.notification.events', 'marty.user-service.user.user_created']
const kafka = skip === false ? await startMockCluster(t) : undefined
for (const topic of MARTY_TOPICS) await kafka?.createTopic(topic)
process.env.KAFKA_BROKERS = kafka?.bootstraps ?? '127.0.0.1:1'

const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false })
t.teardown(() => fauxqs.stop())
process.env.AWS_ENDPOINT_URL_SQS = fauxqs.address
const sqs = new SQSClient({})
t.teardown(() => sqs.destroy())
const eventBridge = new FakeEventBridge()
eventBridge.server.listen(0, '127.0.0.1')
await once(eventBridge.server, 'listening')
t.teardown(() => eventBridge.server.close())
process.env.AWS_ENDPOINT_URL_EVENTBRIDGE = `http://127.0.0.1:${(eventBridge.server.address() as { port: number }).port}`

const example = JSON.parse(readFileSync(new URL('../../examples/routes.seed-platform.json', import.meta.url), 'utf8'))

/** The example routes file as shipped, with exchange names of this test's own; queue from the environment. */
function seedPlatform (t: Test, edit: (file: typeof example) => void = () => {}) {
  const file = structuredClone(example)
  const ocelot = uniqueName('ocelot.events')
  const draftGenie = uniqueName('draft-genie.events')
  file.destinations.ocelot.exchange = ocelot
  file.destinations['draft-genie'].exchange = draftGenie
  edit(file)
  cleanupExchange(t, ocelot)
  cleanupExchange(t, draftGenie)
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify(file))
  const surveysName = `${uniqueName('survey-events').replaceAll('.', '-')}.fifo`
  const surveys = fauxqs.createQueue(surveysName, { attributes: { FifoQueue: 'true' } }).queueUrl
  return { path, ocelot, draftGenie, surveys }
}

async function gateway (
  t: Test,
  routes: ReturnType<typeof seedPlatform>,
  deps: { env?: Record<string, string>, logStream?: LogCapture } = {}
) {
  const app = await buildApp(testConfig(t, { ROUTES_FILE: routes.path, PUBLISH_TIMEOUT_MS: '2000', LOG_LEVEL: 'info' }), {
    env: { ...process.env, SURVEYS_QUEUE_URL: routes.surveys, ...deps.env },
    logStream: deps.logStream ?? new LogCapture()
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/**
 * A durable queue bound on an exchange, consumed as the seed systems consume theirs: they declare
 * the exchange themselves, plain (which is why the example file gives it no alternate exchange).
 */
async function consume (t: Test, exchange: string, queue: string, binding: string, onMessage: (msg: ConsumeMessage) => void) {
  const conn = await amqplib.connect(AMQP_URL)
  const ch = await conn.createChannel()
  await ch.assertExchange(exchange, 'topic', { durable: true })
  await ch.assertQueue(queue, { durable: true })
  await ch.bindQueue(queue, exchange, binding)
  await ch.consume(queue, msg => {
    if (msg === null) return
    onMessage(msg)
    ch.ack(msg)
  })
  t.teardown(async () => {
    await ch.deleteQueue(queue).catch(() => undefined)
    await conn.close().catch(() => undefined)
  })
}

/** Resolves once `count()` reaches `n`, checking after every message. */
function arrivals () {
  let waiters: { n: number, count: () => number, resolve: () => void }[] = []
  return {
    notify: () => { waiters = waiters.filter(w => { if (w.count() < w.n) return true; w.resolve(); return false }) },
    until: (count: () => number, n: number) =>
      count() >= n ? Promise.resolve() : new Promise<void>(resolve => waiters.push({ n, count, resolve }))
  }
}

async function receiveAll (queueUrl: string, expected: number): Promise<Message[]> {
  const got: Message[] = []
  for (let round = 0; got.length < expected && round < 20; round++) {
    const res = await sqs.send(new ReceiveMessageCommand({
      QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: ['All']
    }))
    for (const m of res.Messages ?? []) {
      got.push(m)
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }))
    }
  }
  return got
}

t.test('one gateway serves all 22 types to their destinations, each in the envelope its consumers read', { skip }, async t => {
  const routes = seedPlatform(t)
  const app = await gateway(t, routes)
  const signal = arrivals()

  // Seed 003, Focus-Lite: `focus_lite_calls` bound to comms.call.ended; creates a task on callback_requested.
  const tasks: Record<string, unknown>[] = []
  await consume(t, routes.ocelot, uniqueName('focus_lite_calls'), 'comms.call.ended', message => {
    const event = JSON.parse(message.content.toString())
    if (event.data.outcome === 'callback_requested') {
      tasks.push({
        title: `Call back customer from call ${event.data.call_id}`, organizationId: event.organizationId, userId: event.userId
      })
    }
    signal.notify()
  })
  // Seed 004, Draft Genie: queue `speaker.events`, handlers registered per event type, reading the payload.
  const onboarded: string[] = []
  const handlers: Record<string, (eventData: { payload: { speaker_id: string } }) => void> = {
    'speaker.onboarded': eventData => { onboarded.push(eventData.payload.speaker_id) }
  }
  await consume(t, routes.draftGenie, uniqueName('speaker.events'), 'speaker.*', message => {
    const eventData = JSON.parse(message.content.toString())
    handlers[eventData.eventType]?.(eventData)
    signal.notify()
  })
  // Everything each exchange receives, to check every type got there once.
  const ocelotAll: ConsumeMessage[] = []
  const draftAll: ConsumeMessage[] = []
  await consume(t, routes.ocelot, uniqueName('ocelot.all'), '#', m => { ocelotAll.push(m); signal.notify() })
  await consume(t, routes.draftGenie, uniqueName('draft-genie.all'), '#', m => { draftAll.push(m); signal.notify() })

  const ids = new Map<string, string>()
  for (const entry of BUILTIN_ENTRIES) {
    const headers = { 'x-user-id': 'user-9', 'x-correlation-id': `corr-${entry.type}` }
    const res = await app.inject(post(entry.type, exampleOf(entry.type), headers))
    t.equal(res.statusCode, 202, `${entry.type} accepted`)
    ids.set(entry.type, res.json().id)
  }
  const expectedAt = (prefixes: string[]) => BUILTIN_ENTRIES.filter(e => prefixes.some(p => e.type.startsWith(p))).map(e => e.type).sort()

  // Ocelot: call, campaign and sentiment types, in the Ocelot platform envelope.
  const ocelotTypes = expectedAt(['call.', 'campaign.', 'sentiment.'])
  await signal.until(() => ocelotAll.length, ocelotTypes.length)
  t.same(ocelotAll.map(m => JSON.parse(m.content.toString()).type).sort(), ocelotTypes)
  const callEnded = JSON.parse((ocelotAll.find(m => m.fields.routingKey === 'comms.call.ended') as ConsumeMessage).content.toString())
  t.same(Object.keys(callEnded).sort(), ['data', 'id', 'metadata', 'organizationId', 'source', 'timestamp', 'type', 'userId'])
  t.match(callEnded, {
    id: ids.get('call.ended'),
    type: 'call.ended',
    source: 'communications',
    organizationId: TENANT,
    userId: 'user-9',
    data: exampleOf('call.ended'),
    metadata: { version: '1.0.0', module: 'cc-lite' }
  })
  await signal.until(() => tasks.length, 1)
  t.same(
    tasks,
    [{ title: 'Call back customer from call call-7f3a9c', organizationId: TENANT, userId: 'user-9' }],
    'Focus-Lite made its follow-up task'
  )

  // Draft Genie: speaker, draft, rag and evaluation types, in its TypeScript event shape.
  const draftTypes = expectedAt(['speaker.', 'draft.', 'rag.', 'evaluation.'])
  await signal.until(() => draftAll.length, draftTypes.length)
  t.same(draftAll.map(m => JSON.parse(m.content.toString()).eventType).sort(), draftTypes)
  await signal.until(() => onboarded.length, 1)
  t.same(onboarded, ['spk-123'], 'the speaker.events handler read payload.speaker_id')
  const onboardedEvent = JSON.parse((draftAll.find(m => m.fields.routingKey === 'speaker.onboarded') as ConsumeMessage).content.toString())
  // Both of Draft Genie's shapes in one message: its Python services' fields and its TypeScript
  // services' (test/integration/seed-consumers.test.ts runs those consumers themselves).
  const id = ids.get('speaker.onboarded')
  t.same(onboardedEvent, {
    event_id: id,
    event_type: 'speaker.onboarded',
    aggregate_id: 'spk-123',
    aggregate_type: 'Speaker',
    correlation_id: 'corr-speaker.onboarded',
    eventId: id,
    eventType: 'speaker.onboarded',
    aggregateId: 'spk-123',
    aggregateType: 'Speaker',
    correlationId: 'corr-speaker.onboarded',
    timestamp: onboardedEvent.timestamp,
    version: 1,
    payload: exampleOf('speaker.onboarded')
  })
  t.match(draftAll[0]?.properties.headers, { 'x-tenant-id': TENANT }, 'the tenant travels in the AMQP headers')

  // Surveys: the FIFO queue, in seed 000's flat body, grouped per campaign.
  const surveyTypes = expectedAt(['survey.'])
  const messages = await receiveAll(routes.surveys, surveyTypes.length)
  t.same(messages.map(m => JSON.parse(m.Body as string).event_type).sort(), surveyTypes)
  const completed = messages.find(m => JSON.parse(m.Body as string).event_type === 'survey.completed')
  t.match(JSON.parse(completed?.Body as string), { event_id: ids.get('survey.completed'), ...exampleOf('survey.completed') })
  t.match(completed?.MessageAttributes, { event_type: { StringValue: 'survey.completed' }, 'tenant-id': { StringValue: TENANT } })

  // Batch: PutEvents on the default bus, as seed 001's rule expects it.
  t.match(eventBridge.entries, [{ EventBusName: 'default', Source: 'com.yourapp.transcription', DetailType: 'BatchProcessingCompleted' }])
  t.match(JSON.parse(eventBridge.entries[0]?.Detail as string), {
    version: '1.0',
    tenant_id: TENANT,
    user_id: 'user-9',
    account_id: null,
    status: 'completed',
    interaction_id: exampleOf('batch.processing.completed').interaction_id
  })

  // Seed 002: its three types on its Kafka topics, in the Marty framework's envelope.
  const reader = new ConsumerProcess(t, 'Kafka reader', PYTHON, [join(import.meta.dirname, 'kafka-reader.py')], {
    KAFKA_BROKERS: kafka?.bootstraps ?? '', KAFKA_GROUP_ID: uniqueName('routing'), KAFKA_TOPICS: MARTY_TOPICS.join(',')
  })
  for (const type of expectedAt(['audit.', 'notification.', 'domain.'])) {
    const record = await reader.waitFor(l => typeof l.value === 'string' && l.value.includes(ids.get(type) ?? '?'), type, 20_000)
    t.match(JSON.parse(String(record.value)), { metadata: { event_id: ids.get(type), tenant_id: TENANT }, payload: exampleOf(type) })
  }

  // The store: the Ocelot types fanned out to it with the same ids.
  const storedPage = await app.inject({ method: 'GET', url: '/v1/events?limit=100', headers: { 'x-tenant-id': TENANT } })
  const stored = storedPage.json().events as { id: string, type: string }[]
  t.same(stored.map(e => e.type).sort(), ocelotTypes)
  t.equal(stored.find(e => e.type === 'call.ended')?.id, callEnded.id, 'fan-out: the same id in both destinations')

  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.same(
    ready.json().destinations.map((d: { name: string, up: boolean }) => [d.name, d.up]),
    [['ocelot', true], ['draft-genie', true], ['surveys', true], ['transcripts', true], ['marty', true], ['store', true]]
  )
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /gateway_events_published_total\{destination="ocelot",broker="rabbitmq",type="call.ended",outcome="published"\} 1/)
  t.match(metrics, /gateway_events_published_total\{destination="store",broker="local",type="call.ended",outcome="published"\} 1/)
  t.match(metrics, /gateway_events_published_total\{destination="surveys",broker="sqs",type="survey.completed",outcome="published"\} 1/)
})

t.test('one destination down: its types get a 503 naming it, the others are still taken', { skip }, async t => {
  // Nothing listens on port 1: the Draft Genie connection never comes up. Its password comes
  // from the environment and must not reach a log line.
  const routes = seedPlatform(t, file => { file.destinations['draft-genie'].url = 'amqp://guest:${DRAFT_GENIE_PASSWORD}@127.0.0.1:1' })
  const logs = new LogCapture()
  const app = await gateway(t, routes, { env: { DRAFT_GENIE_PASSWORD: 'hunter2-s3cret' }, logStream: logs })
  await consume(t, routes.ocelot, uniqueName('ocelot.all'), '#', () => {})
  const down = await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))
  t.equal(down.statusCode, 503)
  t.ok(down.headers['retry-after'])
  t.match(down.json(), {
    code: 'EVG_BROKER_UNAVAILABLE',
    reason: 'disconnected',
    detail: /draft-genie/,
    destinations: [{ name: 'draft-genie', code: 'EVG_BROKER_UNAVAILABLE', reason: 'disconnected' }],
    delivered: []
  })
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202, 'ocelot and store types still taken')
  t.equal((await app.inject(post('audit.recorded', exampleOf('audit.recorded')))).statusCode, 202)
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200, 'still ready: the other destinations serve')
  t.match(ready.json(), {
    status: 'degraded', destinations: [{ name: 'ocelot', up: true }, { name: 'draft-genie', up: false, detail: /not connected/ }]
  })
  t.match((await app.inject('/metrics')).body, /gateway_broker_up\{destination="draft-genie",broker="rabbitmq"\} 0/)
  t.match(logs.text, /RabbitMQ not reachable yet/, 'the outage is logged')
  t.notMatch(logs.text, 'hunter2-s3cret', 'the password is not')
  t.notMatch(JSON.stringify([down.json(), ready.json()]), 'hunter2-s3cret')
})

t.test(
  'destinations sharing a connection fail alone: a deleted exchange closes only its own channel, and comes back',
  { skip },
  async t => {
    const routes = seedPlatform(t)
    const app = await gateway(t, routes)
    await consume(t, routes.ocelot, uniqueName('ocelot.all'), '#', () => {})
    await consume(t, routes.draftGenie, uniqueName('draft-genie.all'), '#', () => {})
    t.equal((await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))).statusCode, 202)
    // someone deletes the Draft Genie exchange under the gateway
    const conn = await amqplib.connect(AMQP_URL)
    const ch = await conn.createChannel()
    await ch.deleteExchange(routes.draftGenie)
    await conn.close()
    const lost = await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))
    t.equal(lost.statusCode, 503, 'the publish into the deleted exchange is not confirmed')
    const other = await app.inject(post('call.ended', exampleOf('call.ended')))
    t.equal(other.statusCode, 202, 'the other exchange on the same connection is unaffected')
    // the gateway declares the exchange again and reopens its channel by itself
    let ready = await app.inject('/health/ready')
    for (let i = 0; i < 200 && ready.json().status !== 'ready'; i++) {
      await new Promise(resolve => setTimeout(resolve, 50)) // recovery runs on a timer; no event to await
      ready = await app.inject('/health/ready')
    }
    t.equal(ready.json().status, 'ready')
    await consume(t, routes.draftGenie, uniqueName('draft-genie.again'), '#', () => {})
    t.equal((await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))).statusCode, 202, 'and it publishes again')
  }
)

t.test('what cannot heal stops the start: a refused login, an unknown vhost', { skip }, async t => {
  for (const [url, message] of [
    [
      'amqp://guest:not-the-password@127.0.0.1:5672',
      /RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672 refused the connection: .*ACCESS_REFUSED/
    ],
    [
      'amqp://guest:guest@127.0.0.1:5672/no-such-vhost',
      /refused the connection: the vhost 'no-such-vhost' does not exist or this user may not use it/
    ]
  ] as const) {
    const routes = seedPlatform(t, file => { file.destinations.ocelot.url = url })
    const app = await buildApp(testConfig(t, { ROUTES_FILE: routes.path }), {
      env: { ...process.env, SURVEYS_QUEUE_URL: routes.surveys }, logStream: new LogCapture()
    })
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.ready() }, { name: 'ConfigError', message }, url.replace('not-the-password', '***'))
  }
})
