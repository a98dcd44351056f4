import './aws-env.js'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { TENANT, exampleOf, post, testConfig } from '../helper.js'
import { FakeEventBridge, type Entry } from './fake-eventbridge.js'

const fake = new FakeEventBridge()
fake.server.listen(0, '127.0.0.1')
await once(fake.server, 'listening')
t.teardown(() => fake.server.close())
process.env.AWS_ENDPOINT_URL_EVENTBRIDGE = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`

async function gateway (t: Test, env: Record<string, string> = {}) {
  fake.calls = []
  fake.failWith = () => undefined
  fake.callError = undefined
  fake.buses.add('orders-bus')
  const app = await buildApp(testConfig(t, {
    BROKER: 'eventbridge', EVENTBRIDGE_BUS_NAME: 'orders-bus', EVENT_SOURCE: 'com.example.gateway', ...env
  }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}
const batch = (events: unknown[]) => ({
  method: 'POST' as const,
  url: '/v1/events',
  headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
  payload: JSON.stringify({ events })
})

t.test('every catalog type is a PutEvents entry: Source, DetailType = type, Detail = envelope, bus, trace header', async t => {
  const app = await gateway(t)
  for (const entry of BUILTIN_ENTRIES) {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const res = await app.inject(post(entry.type, exampleOf(entry.type), { traceparent }))
    t.equal(res.statusCode, 202, entry.type)
    const sent = fake.entries.at(-1) as Entry
    t.match(sent, {
      Source: 'com.example.gateway',
      DetailType: entry.type,
      EventBusName: 'orders-bus',
      TraceHeader: 'Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1'
    })
    t.match(JSON.parse(sent.Detail), { id: res.json().id, type: entry.type, tenantid: TENANT, data: exampleOf(entry.type) })
  }
  t.equal((await app.inject('/health/ready')).statusCode, 200)
})

t.test('a batch of 25 goes out as 10 + 10 + 5', async t => {
  const app = await gateway(t)
  const res = await app.inject(batch(Array.from({ length: 25 }, () => ({ type: 'call.ended', data: exampleOf('call.ended') }))))
  t.equal(res.statusCode, 202)
  t.same(fake.calls.map(c => c.length), [10, 10, 5])
})

t.test('200 single events at once share PutEvents calls: fewer than 60, each event once; a lone one goes at once', async t => {
  const app = await gateway(t)
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) =>
    app.inject(post('call.ended', { ...exampleOf('call.ended'), call_id: `c-${i}` }))))
  t.same(answers.map(r => r.statusCode), answers.map(() => 202), 'every request 202')
  t.ok(fake.calls.length < 60, `${fake.calls.length} calls for 200 events`)
  t.ok(fake.calls.every(c => c.length <= 10), 'at most 10 entries a call')
  const ids = fake.entries.map(e => JSON.parse(e.Detail).id as string)
  t.equal(ids.length, 200)
  t.same(new Set(ids), new Set(answers.map(r => r.json().id as string)), 'the 200 answered ids, each once')
  t.match((await app.inject('/metrics')).body, new RegExp(
    `gateway_aws_call_entries_count\\{destination="eventbridge",broker="eventbridge"\\} ${fake.calls.length}\\b`
  ))
  const before = fake.calls.length
  for (let i = 0; i < 3; i++) {
    t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
    t.equal(fake.calls.length, before + i + 1, 'sent before the answer, alone')
  }
})

t.test('an entry refused in a shared call fails only its own request', async t => {
  const app = await gateway(t)
  fake.failWith = (_call, _i, e) => (JSON.parse(e.Detail).data.call_id === 'c-7' ? 'AccessDeniedException' : undefined)
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    app.inject(post('call.ended', { ...exampleOf('call.ended'), call_id: `c-${i}` }))))
  t.equal(answers[7]?.statusCode, 502)
  t.match(answers[7]?.json(), { code: 'EVG_BROKER_REJECTED', reason: 'access_denied_exception' })
  t.equal(answers.filter(r => r.statusCode === 202).length, 19)
  const shared = fake.calls.find(c => c.some(e => JSON.parse(e.Detail).data.call_id === 'c-7'))
  t.ok((shared?.length ?? 0) > 1, 'c-7 shared its call with others')
  t.ok(fake.calls.length < 20, `${fake.calls.length} calls`)
})

t.test('partial failure on HTTP 200: only throttled/internal entries are retried; others are refused per event', async t => {
  const app = await gateway(t)
  fake.failWith = (call, i) => {
    if (call === 0 && (i === 1 || i === 3)) return 'ThrottlingException'
    if (call === 0 && i === 2) return 'InternalFailure'
    if (call === 0 && i === 4) return 'AccessDeniedException'
    return undefined
  }
  const events = Array.from({ length: 6 }, (_, i) => ({ type: 'call.ended', data: { ...exampleOf('call.ended'), call_id: `c-${i}` } }))
  const res = await app.inject(batch(events))
  t.equal(res.statusCode, 207)
  const results = res.json().results
  t.same(
    results.map((r: { status?: string }) => r.status ?? 'failed'),
    ['published', 'published', 'published', 'published', 'failed', 'published']
  )
  t.match(results[4], { error: { code: 'EVG_BROKER_REJECTED', reason: 'access_denied_exception' } })
  t.same(fake.calls.map(c => c.length), [6, 3], 'the retry carried only the three retryable entries')
  t.same(fake.calls[1]?.map(e => JSON.parse(e.Detail).data.call_id), ['c-1', 'c-2', 'c-3'])
  t.match(
    (await app.inject('/metrics')).body,
    /gateway_publish_failures_total\{destination="eventbridge",broker="eventbridge",reason="throttled"\} 2/
  )
})

t.test('a whole call failing: 5xx or throttling is 503, a client error is 502', async t => {
  const app = await gateway(t, { RETRY_MAX_ATTEMPTS: '2' })
  fake.callError = { status: 500, type: 'InternalException' }
  const down = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(down.statusCode, 503)
  t.ok(down.headers['retry-after'])
  fake.callError = { status: 400, type: 'AccessDeniedException' }
  const denied = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(denied.statusCode, 502)
  t.match(denied.json(), { code: 'EVG_BROKER_REJECTED', reason: 'access_denied' })
})

t.test('the entry size rule: larger than EVENTBRIDGE_MAX_ENTRY_BYTES is 413 before any call', async t => {
  const app = await gateway(t, { EVENTBRIDGE_MAX_ENTRY_BYTES: '2048' })
  const res = await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: 'x'.repeat(3000) }))
  t.equal(res.statusCode, 413)
  t.equal(res.json().code, 'EVG_TOO_LARGE')
  t.same(fake.calls, [])
})

t.test('a role that may only PutEvents is ready: AccessDenied on the probe means reachable and signed', async t => {
  const app = await gateway(t)
  fake.publishOnly = true
  t.teardown(() => { fake.publishOnly = false })
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { status: 'ready', destinations: [{ name: 'eventbridge', up: true, detail: /may not describe/ }] })
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
})

t.test('no region: the gateway refuses to start, saying so', async t => {
  const region = process.env.AWS_REGION
  delete process.env.AWS_REGION
  t.teardown(() => { process.env.AWS_REGION = region })
  const app = await buildApp(testConfig(t, { BROKER: 'eventbridge' }))
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.ready() }, { name: 'ConfigError', message: /AWS region: none is configured for EventBridge/ })
})
