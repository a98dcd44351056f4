import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BrokerError } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { TENANT, build, dataDir, exampleOf, post } from '../helper.js'

// Fan-out through the HTTP API, each destination a memory broker that can be told to fail.
const routesFile = {
  destinations: {
    ocelot: { broker: 'rabbitmq', exchange: 'ocelot.events', envelope: 'ocelot', source: 'communications', module: 'cc-lite' },
    store: { broker: 'local' },
    genie: { broker: 'rabbitmq', exchange: 'draft-genie.events', envelope: 'draft-genie' }
  },
  routes: [
    { types: ['call.*'], to: ['ocelot', 'store'] },
    { types: ['speaker.*'], to: ['genie'] },
    { types: ['*'], to: ['store'] }
  ]
}

async function gateway (t: Test, env: Record<string, string> = {}) {
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify(routesFile))
  const brokers = new Map<string, MemoryBroker>()
  const { app } = await build(t, { ROUTES_FILE: path, RETRY_MAX_ATTEMPTS: '1', ...env }, {
    brokers: d => {
      const broker = new MemoryBroker()
      brokers.set(d.name, broker)
      return broker
    }
  })
  const get = (name: string) => brokers.get(name) as MemoryBroker
  return { app, ocelot: get('ocelot'), store: get('store'), genie: get('genie') }
}

const retryable = new BrokerError('connection lost', { retryable: true, reason: 'connection_lost' })

t.test('fan-out: every destination of the route gets the event, same id, each in its own envelope', async t => {
  const { app, ocelot, store, genie } = await gateway(t)
  const res = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-user-id': 'user-9' }))
  t.equal(res.statusCode, 202)
  const id = res.json().id
  t.match(
    ocelot.published[0]?.envelope,
    { id, organizationId: TENANT, userId: 'user-9', source: 'communications', metadata: { module: 'cc-lite' } }
  )
  t.equal(ocelot.published[0]?.contentType, 'application/json')
  t.match(store.published[0]?.envelope, { id, specversion: '1.0', tenantid: TENANT })
  t.equal(store.published[0]?.contentType, 'application/cloudevents+json')
  t.equal(genie.published.length, 0, 'not routed there')
  const types = (await app.inject('/v1/event-types/call.ended')).json()
  t.same(types.destinations, ['ocelot', 'store'], 'the catalog says where a type goes')
})

t.test('one destination fails: a 503 naming it; the other has the event, and is not sent it again', async t => {
  const { app, ocelot, store } = await gateway(t)
  ocelot.failNext(1, retryable)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 503)
  t.ok(res.headers['retry-after'])
  t.match(res.json(), {
    code: 'EVG_BROKER_UNAVAILABLE',
    detail: /not delivered to ocelot/,
    destinations: [{ name: 'ocelot', code: 'EVG_BROKER_UNAVAILABLE', reason: 'connection_lost' }],
    delivered: ['store']
  })
  t.equal(store.published.length, 1)
  t.equal(ocelot.calls, 1, 'RETRY_MAX_ATTEMPTS=1: tried once')
})

t.test('a repeat with the same Idempotency-Key completes the missing destinations only, with the first id', async t => {
  const { app, ocelot, store } = await gateway(t)
  const headers = { 'idempotency-key': 'call-7f3a9c-ended' }
  ocelot.failNext(1, retryable)
  const first = await app.inject(post('call.ended', exampleOf('call.ended'), headers))
  t.equal(first.statusCode, 503)
  const storedId = store.published[0]?.event.id
  const second = await app.inject(post('call.ended', exampleOf('call.ended'), headers))
  t.equal(second.statusCode, 202)
  t.equal(second.json().id, storedId, 'the event the store already has')
  t.equal(store.published.length, 1, 'the store is not sent it again')
  t.equal(ocelot.published.length, 1)
  t.equal(ocelot.published[0]?.event.id, storedId)
  t.equal(ocelot.published[0]?.event.time, store.published[0]?.event.time, 'the same event, not a new one')
  const third = await app.inject(post('call.ended', exampleOf('call.ended'), headers))
  t.equal(third.statusCode, 202)
  t.equal(third.headers['idempotency-replayed'], 'true')
  t.equal(third.json().id, storedId)
  t.equal(ocelot.published.length + store.published.length, 2, 'a replay publishes nothing')
  const other = await app.inject(post('call.ended', { ...exampleOf('call.ended'), duration: 1 }, headers))
  t.equal(other.statusCode, 409, 'another body with the key is a conflict')
})

t.test('a refusal for good wins over try-later in the answer', async t => {
  const { app, ocelot, store } = await gateway(t)
  ocelot.failNext(1, new BrokerError('too big', { retryable: false, reason: 'malformed' }))
  store.failNext(1, retryable)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 502)
  t.match(res.json(), { code: 'EVG_BROKER_REJECTED', reason: 'malformed', delivered: [] })
  t.same(
    res.json().destinations.map((d: { name: string, code: string }) => [d.name, d.code]).sort(),
    [['ocelot', 'EVG_BROKER_REJECTED'], ['store', 'EVG_BROKER_UNAVAILABLE']]
  )
})

t.test('batch: each event goes to its own destinations; a partly delivered item names the one missing', async t => {
  const { app, ocelot, store, genie } = await gateway(t)
  ocelot.failNext(1, retryable)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: JSON.stringify({
      events: [
        { type: 'call.ended', data: exampleOf('call.ended'), idempotencyKey: 'b-1' },
        { type: 'speaker.onboarded', data: exampleOf('speaker.onboarded') },
        { type: 'audit.recorded', data: exampleOf('audit.recorded') }
      ]
    })
  })
  t.equal(res.statusCode, 207)
  const [call, speaker, audit] = res.json().results
  t.match(call, { error: { code: 'EVG_BROKER_UNAVAILABLE', destinations: [{ name: 'ocelot' }], delivered: ['store'] } })
  t.match(speaker, { type: 'speaker.onboarded', status: 'published' })
  t.match(audit, { type: 'audit.recorded', status: 'published' })
  t.same(genie.published.map(e => e.envelope.eventType), ['speaker.onboarded'])
  t.same(store.published.map(e => e.event.type), ['call.ended', 'audit.recorded'])
  t.equal(genie.calls, 1, 'one call per destination for the whole batch')
  // the single route and the batch share keys: the single repeat completes the batch item
  const repeat = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'b-1' }))
  t.equal(repeat.statusCode, 202)
  t.equal(repeat.json().id, store.published[0]?.event.id)
  t.equal(store.published.length, 2, 'the store got the call once')
})

t.test('20 identical keyed requests at once publish once per destination', async t => {
  const { app, ocelot, store } = await gateway(t)
  const release = ocelot.hold()
  const answers = Array.from({ length: 20 }, () => app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'same' })))
  while (ocelot.calls === 0) await new Promise(resolve => setImmediate(resolve))
  release()
  const responses = await Promise.all(answers)
  t.same([...new Set(responses.map(r => r.statusCode))], [202])
  t.equal(new Set(responses.map(r => r.json().id)).size, 1, 'all answered with the same id')
  t.equal(ocelot.published.length, 1)
  t.equal(store.published.length, 1)
})

t.test('health and metrics per destination', async t => {
  const { app, genie } = await gateway(t)
  genie.up = false
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), {
    status: 'degraded',
    destinations: [
      { name: 'ocelot', broker: 'memory', up: true, delivery: 'sync' },
      { name: 'store', broker: 'memory', up: true, delivery: 'sync' },
      { name: 'genie', broker: 'memory', up: false, detail: 'simulated down', delivery: 'sync' }
    ],
    state: { store: 'sqlite', up: true }
  })
  await app.inject(post('call.ended', exampleOf('call.ended')))
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /gateway_events_published_total\{destination="ocelot",broker="memory",type="call.ended",outcome="published"\} 1/)
  t.match(metrics, /gateway_events_published_total\{destination="store",broker="memory",type="call.ended",outcome="published"\} 1/)
  t.match(metrics, /gateway_broker_up\{destination="genie",broker="memory"\} 0/)
})

t.test('requests waiting on a key whose first attempt failed: exactly one of them publishes, the rest replay it', async t => {
  const { app, ocelot, store } = await gateway(t)
  const headers = { 'idempotency-key': 'contended' }
  const release = ocelot.hold()
  ocelot.failNext(1, retryable)
  const first = app.inject(post('call.ended', exampleOf('call.ended'), headers))
  while (ocelot.calls === 0) await new Promise(resolve => setImmediate(resolve))
  const waiters = []
  for (let i = 0; i < 5; i++) {
    waiters.push(app.inject(post('call.ended', exampleOf('call.ended'), headers)))
    await new Promise(resolve => setImmediate(resolve))
  }
  release()
  t.equal((await first).statusCode, 503, 'the first attempt reached only the store')
  const answers = await Promise.all(waiters)
  t.same(answers.map(r => r.statusCode), [202, 202, 202, 202, 202])
  t.equal(new Set(answers.map(r => r.json().id)).size, 1, 'one event')
  t.equal(answers.filter(r => r.headers['idempotency-replayed'] === 'true').length, 4, 'one completed it, four replayed')
  t.equal(ocelot.published.length, 1)
  t.equal(store.published.length, 1)
  t.equal(ocelot.published[0]?.event.id, store.published[0]?.event.id)
})

t.test('a batch none of whose events was taken: 503 with Retry-After when any may succeed later', async t => {
  const { app, ocelot, genie } = await gateway(t)
  ocelot.failNext(1, new BrokerError('unroutable', { retryable: false, reason: 'unroutable' }))
  genie.failNext(1, retryable)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: JSON.stringify({
      events: [{ type: 'call.ended', data: exampleOf('call.ended') }, { type: 'speaker.onboarded', data: exampleOf('speaker.onboarded') }]
    })
  })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'EVG_BROKER_UNAVAILABLE')
  t.ok(res.headers['retry-after'])
  ocelot.failNext(1, new BrokerError('unroutable', { retryable: false, reason: 'unroutable' }))
  const single = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(single.statusCode, 502)
  t.notOk(single.headers['retry-after'], 'a refusal for good says nothing about later')
})
