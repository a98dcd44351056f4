import './aws-env.js'
import { once } from 'node:events'
import { GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs'
import { startFauxqs } from 'fauxqs'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { runTs, testConfig } from '../helper.js'
import { baseUrl, startSqs, writeJson } from './cli-helper.js'
import { FakeEventBridge } from './fake-eventbridge.js'

const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false })
t.teardown(() => fauxqs.stop())
const fake = new FakeEventBridge()
fake.server.listen(0, '127.0.0.1')
await once(fake.server, 'listening')
t.teardown(() => fake.server.close())
const awsEnv = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL_SQS: fauxqs.address,
  AWS_ENDPOINT_URL_EVENTBRIDGE: `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`
}
Object.assign(process.env, awsEnv)
const sqs = new SQSClient({})
t.teardown(() => sqs.destroy())
// Queues for routes files: their destinations name this fauxqs as their endpoint.
const routed = await startSqs(t)
const routedSqs = new SQSClient({ endpoint: routed.fauxqs.address })
t.teardown(() => routedSqs.destroy())
const newQueue = (name: string) => routed.queue(name)

const cli = (script: string, args: string[], env: Record<string, string | undefined>) =>
  runTs(`src/cli/${script}.ts`, args, { ...awsEnv, ...env })
// What verify prints for a cloudevents envelope that arrived as sent (plain text: no regex syntax in it).
const CLOUDEVENTS_AS_SENT = 'cloudevents envelope: specversion, id, source, type, time, datacontenttype, dataschema, ' +
  'tenantid, correlationid, data, userid as sent'

t.test('provision for SQS: queue + DLQ with redrive; a second run changes nothing and says so', async t => {
  const env = { BROKER: 'sqs', SQS_QUEUE_URL: `${fauxqs.address}/000000000000/evg-prov-1` }
  const first = cli('provision', [], env)
  t.equal(await first.exit, 0, first.out.stderr)
  t.match(first.out.stdout, /queue evg-prov-1-dlq\s+created/)
  t.match(first.out.stdout, /queue evg-prov-1\s+created/)
  t.match(first.out.stdout, /redrive evg-prov-1 -> evg-prov-1-dlq after 5 receives\s+created/)
  t.match(first.out.stdout, /Done: 3 created, 0 already in place/)
  const url = (await sqs.send(new GetQueueUrlCommand({ QueueName: 'evg-prov-1' }))).QueueUrl
  const attrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['RedrivePolicy'] }))).Attributes
  t.match(JSON.parse(attrs?.RedrivePolicy ?? '{}'), { deadLetterTargetArn: /evg-prov-1-dlq$/ })
  const second = cli('provision', [], env)
  t.equal(await second.exit, 0)
  t.match(second.out.stdout, /Nothing to change: all 3 already in place/)
})

t.test('provision for EventBridge: FIFO queues, bus, rule on EVENT_SOURCE, target and queue policy; idempotent', async t => {
  const env = {
    BROKER: 'eventbridge',
    SQS_QUEUE_URL: `${fauxqs.address}/000000000000/evg-prov-2.fifo`,
    EVENTBRIDGE_BUS_NAME: 'batch-bus',
    EVENT_SOURCE: 'com.example.batch'
  }
  const first = cli('provision', [], env)
  t.equal(await first.exit, 0, first.out.stderr)
  t.match(first.out.stdout, /queue evg-prov-2-dlq\.fifo \(FIFO\)\s+created/)
  t.match(first.out.stdout, /event bus batch-bus\s+created/)
  t.match(first.out.stdout, /rule evg-evg-prov-2 on batch-bus matching source com\.example\.batch\s+created/)
  t.match(first.out.stdout, /queue policy: the rule may send to evg-prov-2\.fifo\s+created/)
  const rule = fake.rules.get('batch-bus/evg-evg-prov-2')
  t.same(JSON.parse(rule?.pattern ?? '{}'), { source: ['com.example.batch'] })
  t.match(rule?.targets, [{ Arn: /evg-prov-2\.fifo$/ }])
  const url = (await sqs.send(new GetQueueUrlCommand({ QueueName: 'evg-prov-2.fifo' }))).QueueUrl
  const policyAttrs = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['Policy'] }))).Attributes
  const policy = JSON.parse(policyAttrs?.Policy ?? '{}')
  t.match(policy.Statement[0], {
    Principal: { Service: 'events.amazonaws.com' },
    Action: 'sqs:SendMessage',
    Condition: { ArnEquals: { 'aws:SourceArn': /rule\/batch-bus\/evg-evg-prov-2$/ } }
  })
  const second = cli('provision', [], env)
  t.equal(await second.exit, 0)
  t.match(second.out.stdout, /Nothing to change: all 7 already in place/)
})

t.test('provision with a routes file: each SQS destination at its own endpoint, --destination selects, local needs nothing', async t => {
  const queueUrl = (name: string) => `${fauxqs.address}/000000000000/${name}`
  const ROUTES_FILE = writeJson(t, 'routes.json', {
    destinations: {
      orders: { broker: 'sqs', queueUrl: queueUrl('evg-rf-orders'), endpoint: fauxqs.address },
      surveys: { broker: 'sqs', queueUrl: queueUrl('evg-rf-surveys.fifo'), endpoint: fauxqs.address },
      store: { broker: 'local' }
    },
    routes: [{ types: ['batch.*'], to: ['orders'] }, { types: ['survey.*'], to: ['surveys'] }, { types: ['*'], to: ['store'] }]
  })
  // Nothing listens at the SDK's own endpoint: the destinations' endpoint is the one that must be used.
  const env = { ROUTES_FILE, AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:9' }
  const one = cli('provision', ['--destination', 'surveys'], env)
  t.equal(await one.exit, 0, one.out.stderr)
  t.match(one.out.stdout, /Destination surveys: SQS queue .*evg-rf-surveys\.fifo\n {2}queue evg-rf-surveys-dlq\.fifo \(FIFO\)\s+created/)
  t.notMatch(one.out.stdout, /orders|store/, 'only the destination named')
  t.match(one.out.stdout, /Done: 3 created, 0 already in place/)
  await t.rejects(sqs.send(new GetQueueUrlCommand({ QueueName: 'evg-rf-orders' })), 'the other queue is not created')

  const all = cli('provision', [], env)
  t.equal(await all.exit, 0, all.out.stderr)
  t.match(all.out.stdout, /Destination orders: SQS queue [^\n]*\n {2}queue evg-rf-orders-dlq\s+created\n {2}queue evg-rf-orders\s+created/)
  t.match(all.out.stdout, /Destination surveys: [^\n]*\n {2}queue evg-rf-surveys-dlq\.fifo \(FIFO\)\s+exists/)
  t.match(all.out.stdout, /Destination store: the local store, needs nothing/)
  t.match(all.out.stdout, /Done: 3 created, 3 already in place/, 'counted over every destination')
})

t.test(
  'provision an EventBridge destination from a routes file: its bus, ' +
    'and the rule feeding SQS_QUEUE_URL on the sources of every destination on that bus',
  async t => {
    const ROUTES_FILE = writeJson(t, 'routes.json', {
      destinations: {
        'batch-bus': { broker: 'eventbridge', busName: 'rf-batch-events', source: 'com.example.rf' },
        'audit-bus': { broker: 'eventbridge', busName: 'rf-batch-events', source: 'com.example.audit' },
        store: { broker: 'local' }
      },
      routes: [{ types: ['batch.*'], to: ['batch-bus'] }, { types: ['audit.*'], to: ['audit-bus'] }, { types: ['*'], to: ['store'] }]
    })
    const busOnly = cli('provision', ['--destination', 'batch-bus'], { ROUTES_FILE, SQS_QUEUE_URL: undefined })
    t.equal(await busOnly.exit, 0, busOnly.out.stderr)
    t.match(busOnly.out.stdout, /event bus rf-batch-events\s+created/)
    t.match(busOnly.out.stdout, /no rule to a queue: name one in the queues file, or set SQS_QUEUE_URL to the queue the bus should feed/)
    const withQueue = cli('provision', ['--destination', 'batch-bus'], {
      ROUTES_FILE, SQS_QUEUE_URL: `${fauxqs.address}/000000000000/evg-rf-batch`
    })
    t.equal(await withQueue.exit, 0, withQueue.out.stderr)
    t.match(withQueue.out.stdout, /event bus rf-batch-events\s+exists/)
    t.match(
      withQueue.out.stdout,
      /rule evg-evg-rf-batch on rf-batch-events matching source com\.example\.rf, com\.example\.audit\s+created/
    )
    t.same(
      JSON.parse(fake.rules.get('rf-batch-events/evg-evg-rf-batch')?.pattern ?? '{}'),
      { source: ['com.example.rf', 'com.example.audit'] },
      'provisioning one destination keeps the other\'s events flowing'
    )
    t.match(fake.rules.get('rf-batch-events/evg-evg-rf-batch')?.targets, [{ Arn: /evg-rf-batch$/ }])
    t.match(withQueue.out.stdout, /Done: 6 created, 1 already in place/)
  }
)

/** A gateway on a free port, built from a routes file as `npm start` would build it. */
async function gateway (t: Test, routes: unknown) {
  const ROUTES_FILE = writeJson(t, 'gateway-routes.json', routes)
  const app = await buildApp(testConfig(t, { ROUTES_FILE }))
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { url: baseUrl(app.server.address()), ROUTES_FILE }
}

t.test(
  'verify per destination: SQS and the local store each get the event as sent, one line each; the test message is deleted',
  async t => {
    const queueUrl = newQueue('evg-verify')
    const routes = {
      destinations: { surveys: { broker: 'sqs', queueUrl, endpoint: routed.fauxqs.address }, store: { broker: 'local' } },
      routes: [{ types: ['survey.*'], to: ['surveys'] }, { types: ['*'], to: ['store'] }]
    }
    const { url, ROUTES_FILE } = await gateway(t, routes)
    const ok = cli('verify', ['--gateway', url, '--timeout', '10'], { ROUTES_FILE })
    t.equal(await ok.exit, 0, ok.out.stderr)
    t.match(ok.out.stdout, /POST .*\/v1\/events\/survey\.completed .* for surveys\n/)
    t.match(ok.out.stdout, new RegExp(
      /surveys {2}sqs +verified: survey\.completed \S+ in queue .*evg-verify; /.source + CLOUDEVENTS_AS_SENT + /; deleted/.source
    ))
    t.match(ok.out.stdout, new RegExp(
      /store {4}local +verified: batch\.processing\.completed \S+ in .*\/v1\/events; /.source + CLOUDEVENTS_AS_SENT + /; kept/.source
    ))
    t.match(ok.out.stdout, /verified: 2 destination\(s\)/)
    const left = await routedSqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0 }))
    t.same(left.Messages ?? [], [], 'the test message was deleted')

    const noGateway = cli('verify', ['--gateway', 'http://127.0.0.1:9', '--destination', 'surveys'], { ROUTES_FILE })
    t.equal(await noGateway.exit, 2)
    t.match(noGateway.out.stderr, /surveys +sqs +FAILED \(2\): the gateway is not reachable/)
  }
)

t.test('verify says which destination failed and how: not received (3), wrong envelope (4)', async t => {
  const queueUrl = newQueue('evg-verify-2')
  const routes = {
    destinations: { surveys: { broker: 'sqs', queueUrl, endpoint: routed.fauxqs.address }, store: { broker: 'local' } },
    routes: [{ types: ['survey.*'], to: ['surveys'] }, { types: ['*'], to: ['store'] }]
  }
  const { url } = await gateway(t, routes)
  // verify reads its own routes file: one that says other than the gateway's shows each failure.
  const other = { broker: 'sqs', queueUrl: newQueue('evg-verify-other'), endpoint: routed.fauxqs.address }
  const elsewhere = writeJson(t, 'elsewhere.json', { ...routes, destinations: { ...routes.destinations, surveys: other } })
  const missing = cli('verify', ['--gateway', url, '--timeout', '2'], { ROUTES_FILE: elsewhere })
  t.equal(await missing.exit, 3)
  t.match(missing.out.stderr, /surveys +sqs +FAILED \(3\): event \S+ did not arrive in queue .*evg-verify-other within 2 s/)
  t.match(missing.out.stdout, /store +local +verified/, 'the other destination is still checked')
  t.match(missing.out.stderr, /FAILED: 1 of 2 destination\(s\) not verified \(surveys\)/)

  const otherSource = writeJson(t, 'other-source.json', {
    ...routes,
    destinations: { ...routes.destinations, surveys: { broker: 'sqs', queueUrl, endpoint: routed.fauxqs.address, source: 'someone-else' } }
  })
  const wrong = cli('verify', ['--gateway', url, '--destination', 'surveys', '--timeout', '10'], { ROUTES_FILE: otherSource })
  t.equal(await wrong.exit, 4)
  t.match(
    wrong.out.stderr,
    /FAILED \(4\): the cloudevents envelope is not what was sent \(deleted\): source is "event-gateway", expected "someone-else"/
  )
})

t.test('verify an EventBridge destination: the event arrives in SQS_QUEUE_URL through the rule, wrapped as detail', async t => {
  // SQS_QUEUE_URL as before routes files: the SDK's endpoint (AWS_ENDPOINT_URL_SQS) reaches it.
  const { queueUrl } = fauxqs.createQueue('evg-verify-eb')
  // The fake bus delivers what it is given to the queue, as a rule with that queue as target would.
  fake.failWith = (_call, _i, e) => {
    const wrapped = {
      version: '0', id: 'eb-1', 'detail-type': e.DetailType, source: e.Source, time: new Date().toISOString(), detail: JSON.parse(e.Detail)
    }
    void sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(wrapped) }))
    return undefined
  }
  t.teardown(() => { fake.failWith = () => undefined })
  fake.buses.add('verify-bus')
  const routes = {
    destinations: {
      'batch-bus': { broker: 'eventbridge', busName: 'verify-bus', source: 'com.example.batch' },
      store: { broker: 'local' }
    },
    routes: [{ types: ['batch.*'], to: ['batch-bus'] }, { types: ['*'], to: ['store'] }]
  }
  const { url, ROUTES_FILE } = await gateway(t, routes)
  const ok = cli('verify', ['--gateway', url, '--destination', 'batch-bus', '--timeout', '10'], { ROUTES_FILE, SQS_QUEUE_URL: queueUrl })
  t.equal(await ok.exit, 0, ok.out.stderr)
  t.match(ok.out.stdout, new RegExp(
    /batch-bus +eventbridge +verified: batch\.processing\.completed \S+ in queue .*evg-verify-eb through bus verify-bus; /.source +
    CLOUDEVENTS_AS_SENT + /; deleted/.source
  ))
  const left = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 0 }))
  t.same(left.Messages ?? [], [], 'the test message was deleted')
})
