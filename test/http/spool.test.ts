import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { BrokerError, type OutgoingEvent, type PublishOutcome } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { OTHER_TENANT, TENANT, build, dataDir, exampleOf, post, postBatch, testConfig } from '../helper.js'

// Spool mode as a client and an operator see it, in-process with memory brokers: answers, what
// the broker gets and when, readiness, the admin API, limits and restarts. The stores themselves
// are in test/spool/stores.test.ts.

const SPOOL = { DELIVERY_MODE: 'spool' }

/** A memory broker that can be taken down: while down its health says so and every publish fails retryably. */
class Switchable extends MemoryBroker {
  override async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    if (this.up) return await super.publish(events)
    this.calls++
    const error = new BrokerError('connection refused', { retryable: true, reason: 'connection_lost', down: true })
    return events.map(() => ({ ok: false, error }))
  }
}

const refusal = new BrokerError('no route for the message', { retryable: false, reason: 'unroutable' })

/** Polls until `get` gives something; throws (rather than hangs) if it never does. Not a timing assertion. */
async function until<T> (what: string, get: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  const end = Date.now() + 30_000
  for (;;) {
    const value = await get()
    if (value !== undefined && value !== false) return value
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

const call = (id: string) => ({ ...exampleOf('call.ended'), call_id: id })
const idsOf = (broker: MemoryBroker) => broker.published.map(e => e.event.id)

type App = Awaited<ReturnType<typeof build>>['app']

/** Waits until the outbox of the (first) spooled destination is as asked: its counts follow publishes and burials a moment later. */
async function outboxUntil (
  app: App,
  what: string,
  want: (d: { depth: number, deadLetters: number }) => boolean
): Promise<{ name: string, depth: number, bytes: number, oldestAgeSeconds: number, deadLetters: number, deadBytes: number }> {
  return await until(`the outbox: ${what}`, async () => {
    const d = (await app.inject('/v1/admin/outbox')).json().destinations[0]
    return want(d) && d
  })
}

/**
 * Sends an event and waits until the broker has it: the relay publishes in accept order, so
 * everything accepted before it has been dealt with (published, or set aside) by then.
 */
async function flush (app: App, broker: MemoryBroker): Promise<string> {
  const res = await app.inject(post('call.ended', call('marker')))
  if (res.statusCode !== 202) throw new Error(`marker refused: ${res.body}`)
  const id = res.json().id as string
  await until('the marker to be published', () => idsOf(broker).includes(id))
  return id
}

t.test('an event is answered 202 queued once the outbox has it; the relay then publishes it', async t => {
  const { app, broker } = await build(t, SPOOL)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 202)
  t.match(res.json(), { id: String, type: 'call.ended', status: 'queued' })
  const published = await broker.waitFor({ type: 'call.ended' })
  t.equal(published.event.id, res.json().id)
  t.match(
    published.envelope,
    { id: res.json().id, type: 'call.ended', tenantid: TENANT, data: exampleOf('call.ended') },
    'the whole envelope, data included'
  )
  t.equal(broker.published.length, 1, 'once')
  t.same(
    await outboxUntil(app, 'drained', d => d.depth === 0),
    { name: 'local', depth: 0, bytes: 0, oldestAgeSeconds: 0, deadLetters: 0, deadBytes: 0 }
  )
  t.equal((await app.inject('/v1/admin/outbox')).json().store, 'sqlite')
})

t.test(
  'broker down: still 202 queued, readiness degraded with the outbox depth; back up, every event arrives in accept order per tenant',
  async t => {
    const broker = new Switchable()
    broker.up = false
    const { app } = await build(t, SPOOL, { broker })
    const sent: { tenant: string, id: string }[] = []
    for (let i = 0; i < 6; i++) {
      const tenant = i % 3 === 0 ? OTHER_TENANT : TENANT
      const res = await app.inject(post('call.ended', call(`c-${i}`), { 'x-tenant-id': tenant }))
      t.equal(res.statusCode, 202)
      t.equal(res.json().status, 'queued')
      sent.push({ tenant, id: res.json().id })
    }
    const ready = await app.inject('/health/ready')
    t.equal(ready.statusCode, 200, 'still in rotation: the outbox takes events')
    t.equal(ready.json().status, 'degraded')
    t.match(ready.json().destinations, [{ name: 'local', up: false, delivery: 'spool', outbox: { up: true, depth: 6, deadLetters: 0 } }])
    t.ok(ready.json().destinations[0].outbox.oldestAgeSeconds >= 0)
    t.equal(broker.published.length, 0)

    broker.up = true
    await until('all six to be published', () => broker.published.length >= 6)
    for (const tenant of [TENANT, OTHER_TENANT]) {
      const published = broker.published.filter(e => e.event.tenantId === tenant).map(e => e.event.id)
      t.same(published, sent.filter(s => s.tenant === tenant).map(s => s.id), `${tenant}: in accept order`)
    }
    t.equal(broker.published.length, 6, 'each once')
    const after = await until('readiness ready again, the outbox drained', async () => {
      const r = await app.inject('/health/ready')
      return r.json().status === 'ready' && r.json().destinations[0].outbox.depth === 0 && r
    })
    t.match(after.json().destinations, [{ up: true, outbox: { up: true, depth: 0 } }])
    const dead = (await app.inject('/v1/admin/dead-letters')).json()
    t.same(dead.deadLetters, [], 'an outage of any length buries nothing')
  }
)

t.test(
  'a broker refusing for good: a dead letter, listed with reason, envelope and tenant; replay publishes it, purge deletes it',
  async t => {
    const { app, broker } = await build(t, SPOOL)
    broker.failNext(1, refusal)
    const res = await app.inject(post('call.ended', call('refused-1')))
    t.equal(res.statusCode, 202, 'accepted: the refusal comes later')
    t.equal(res.json().status, 'queued')
    const id = res.json().id
    const page = await until('the dead letter', async () => {
      const p = (await app.inject('/v1/admin/dead-letters')).json()
      return p.deadLetters.length > 0 && p
    })
    t.equal(page.deadLetters.length, 1)
    const [dead] = page.deadLetters
    t.match(dead, {
      id: Number,
      destination: 'local',
      tenantId: TENANT,
      eventId: id,
      type: 'call.ended',
      attempts: 0,
      reason: /EVG_BROKER_REJECTED.*unroutable/
    })
    t.match(dead.envelope, { id, tenantid: TENANT, data: { call_id: 'refused-1' } }, 'the envelope as the broker was to get it')
    t.ok(!Number.isNaN(Date.parse(dead.acceptedAt)) && !Number.isNaN(Date.parse(dead.failedAt)))
    t.equal(page.next, dead.id)
    t.same(idsOf(broker), [], 'the broker does not have it')
    t.match(await outboxUntil(app, 'one dead letter', d => d.deadLetters === 1), { name: 'local', depth: 0, deadLetters: 1 })
    t.match((await app.inject('/health/ready')).json().destinations, [{ outbox: { depth: 0, deadLetters: 1 } }])

    const replay = await app.inject({ method: 'POST', url: '/v1/admin/dead-letters/replay', payload: { destination: 'local' } })
    t.equal(replay.statusCode, 200)
    t.same(replay.json(), { replayed: 1 })
    await until('the replayed event to be published', () => idsOf(broker).includes(id))
    await flush(app, broker)
    t.same(idsOf(broker).filter(x => x === id), [id], 'published once, under its own id')
    t.same((await app.inject('/v1/admin/dead-letters')).json().deadLetters, [])

    broker.failNext(1, refusal)
    const doomed = (await app.inject(post('call.ended', call('refused-2')))).json().id
    const [again] = await until('the second dead letter', async () => {
      const p = (await app.inject('/v1/admin/dead-letters')).json()
      return p.deadLetters.length > 0 && p.deadLetters
    })
    t.equal(again.eventId, doomed)
    const purge = await app.inject({ method: 'POST', url: '/v1/admin/dead-letters/purge', payload: { ids: [again.id] } })
    t.same(purge.json(), { purged: 1 })
    t.same((await app.inject('/v1/admin/dead-letters')).json().deadLetters, [], 'gone')
    await flush(app, broker)
    t.notOk(idsOf(broker).includes(doomed), 'a purged event is never published')
    const replayAll = await app.inject({ method: 'POST', url: '/v1/admin/dead-letters/replay', payload: { all: true } })
    t.same(replayAll.json(), { replayed: 0 }, 'nothing left to replay')
  }
)

t.test('a broker that answers but keeps failing: a dead letter after OUTBOX_MAX_ATTEMPTS', async t => {
  const { app, broker } = await build(t, { ...SPOOL, OUTBOX_MAX_ATTEMPTS: '2', RETRY_MAX_ATTEMPTS: '1' })
  // Its answer about the event, "not now" (a nack): a timeout would count nothing.
  broker.failNext(2, new BrokerError('nacked', { retryable: true, reason: 'nack', answered: true }))
  const id = (await app.inject(post('call.ended', call('flaky')))).json().id
  const [dead] = await until('the dead letter', async () => {
    const p = (await app.inject('/v1/admin/dead-letters')).json()
    return p.deadLetters.length > 0 && p.deadLetters
  })
  t.match(dead, { eventId: id, reason: 'failed 2 attempts' })
  await flush(app, broker)
  t.notOk(idsOf(broker).includes(id))
})

t.test('dead letters page with after and limit, per destination', async t => {
  const { app, broker } = await build(t, SPOOL)
  broker.failNext(3, refusal)
  // One at a time, so each is its own publish call and the broker refuses all three.
  const ids: string[] = []
  for (const n of [1, 2, 3]) {
    ids.push((await app.inject(post('call.ended', call(`dl-${n}`)))).json().id)
    await until(`dead letter ${n}`, async () => (await app.inject('/v1/admin/dead-letters')).json().deadLetters.length >= n)
  }
  const first = (await app.inject('/v1/admin/dead-letters?limit=2')).json()
  t.same(first.deadLetters.map((d: { eventId: string }) => d.eventId), ids.slice(0, 2))
  const second = (await app.inject(`/v1/admin/dead-letters?limit=2&after=${first.next}`)).json()
  t.same(second.deadLetters.map((d: { eventId: string }) => d.eventId), ids.slice(2))
  const third = (await app.inject(`/v1/admin/dead-letters?limit=2&after=${second.next}`)).json()
  t.same(third, { deadLetters: [], next: second.next }, 'the end: next stays where it was')
  t.equal((await app.inject('/v1/admin/dead-letters?destination=local')).json().deadLetters.length, 3)
  const unknown = await app.inject('/v1/admin/dead-letters?destination=nowhere')
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'EVG_NOT_FOUND')
  t.equal((await app.inject('/v1/admin/dead-letters?limit=0')).statusCode, 400)
})

t.test('admin API with API_KEYS_FILE: no key 401, a key without admin 403, an admin key 200', async t => {
  const sha = (key: string) => createHash('sha256').update(key).digest('hex')
  const dir = t.testdir({
    'keys.json': JSON.stringify({
      keys: [
        { name: 'publisher', sha256: sha('publisher-key'), tenants: ['*'], eventTypes: ['*'] },
        { name: 'operator', sha256: sha('operator-key'), tenants: ['*'], eventTypes: ['*'], admin: true }
      ]
    })
  })
  const { app } = await build(t, { ...SPOOL, API_KEYS_FILE: join(dir, 'keys.json') })
  const as = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` })
  for (const request of [
    { method: 'GET' as const, url: '/v1/admin/outbox' },
    { method: 'GET' as const, url: '/v1/admin/dead-letters' },
    { method: 'POST' as const, url: '/v1/admin/dead-letters/replay', payload: { all: true } },
    { method: 'POST' as const, url: '/v1/admin/dead-letters/purge', payload: { all: true } }
  ]) {
    const none = await app.inject(request)
    t.equal(none.statusCode, 401, `${request.url}: no key`)
    t.equal(none.json().code, 'EVG_UNAUTHORIZED')
    const publisher = await app.inject({ ...request, headers: as('publisher-key') })
    t.equal(publisher.statusCode, 403, `${request.url}: not an admin key`)
    t.equal(publisher.json().code, 'EVG_FORBIDDEN')
    t.equal((await app.inject({ ...request, headers: as('operator-key') })).statusCode, 200, `${request.url}: admin key`)
  }
  const wrong = await app.inject({ method: 'GET', url: '/v1/admin/outbox', headers: as('no-such-key') })
  t.equal(wrong.statusCode, 401)
  const sent = await app.inject(post('call.ended', exampleOf('call.ended'), as('publisher-key')))
  t.equal(sent.statusCode, 202, 'the publisher key still publishes')
  t.equal(sent.json().status, 'queued')
})

t.test('admin API with nothing spooled: 404 EVG_NOT_FOUND', async t => {
  const { app } = await build(t)
  for (const request of [
    { method: 'GET' as const, url: '/v1/admin/outbox' },
    { method: 'GET' as const, url: '/v1/admin/dead-letters' },
    { method: 'POST' as const, url: '/v1/admin/dead-letters/replay', payload: { all: true } },
    { method: 'POST' as const, url: '/v1/admin/dead-letters/purge', payload: { all: true } }
  ]) {
    const res = await app.inject(request)
    t.equal(res.statusCode, 404, request.url)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.equal(res.json().code, 'EVG_NOT_FOUND')
  }
  const sent = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(sent.json().status, 'published', 'sync: published, not queued')
})

t.test('replay and purge take a selection: none is 400, an unknown destination 404', async t => {
  const { app } = await build(t, SPOOL)
  for (const action of ['replay', 'purge']) {
    const url = `/v1/admin/dead-letters/${action}`
    const empty = await app.inject({ method: 'POST', url, payload: {} })
    t.equal(empty.statusCode, 400, `${action}: nothing selected`)
    t.equal(empty.json().code, 'EVG_VALIDATION')
    t.equal((await app.inject({ method: 'POST', url, payload: { all: false } })).statusCode, 400, `${action}: all false`)
    t.equal((await app.inject({ method: 'POST', url, payload: { ids: [] } })).statusCode, 400, `${action}: no ids`)
    t.equal((await app.inject({ method: 'POST', url, payload: { ids: [0] } })).statusCode, 400, `${action}: not an id`)
    const extra = await app.inject({ method: 'POST', url, payload: { destination: 'local', extra: 1 } })
    t.equal(extra.statusCode, 400, `${action}: unknown field`)
    const unknown = await app.inject({ method: 'POST', url, payload: { destination: 'nowhere' } })
    t.equal(unknown.statusCode, 404, `${action}: unknown destination`)
    t.equal(unknown.json().code, 'EVG_NOT_FOUND')
    const none = await app.inject({ method: 'POST', url, payload: { ids: [12345] } })
    t.equal(none.statusCode, 200, `${action}: ids that match nothing are fine`)
  }
})

t.test(
  'OUTBOX_MAX_EVENTS reached while the broker is down: 503 EVG_OVERLOADED with Retry-After, and that event is never published',
  async t => {
    const broker = new Switchable()
    broker.up = false
    const { app } = await build(t, { ...SPOOL, OUTBOX_MAX_EVENTS: '3' }, { broker })
    const accepted: string[] = []
    for (const n of [1, 2, 3]) {
      const res = await app.inject(post('call.ended', call(`fits-${n}`)))
      t.equal(res.statusCode, 202)
      accepted.push(res.json().id)
    }
    const full = await app.inject(post('call.ended', call('too-many')))
    t.equal(full.statusCode, 503)
    t.match(full.headers['content-type'], /^application\/problem\+json/)
    t.ok(Number(full.headers['retry-after']) > 0, 'Retry-After')
    t.match(full.json(), { code: 'EVG_OVERLOADED', status: 503 })
    const batch = await app.inject(postBatch([{ type: 'call.ended', data: call('too-many-batch') }]))
    t.equal(batch.statusCode, 503, 'a batch too')
    t.match((await app.inject('/metrics')).body, /gateway_outbox_events_total\{destination="local",outcome="refused"\} 2/)

    broker.up = true
    await until('the three to be published', () => broker.published.length >= 3)
    await outboxUntil(app, 'drained', d => d.depth === 0)
    const marker = await flush(app, broker)
    t.same(idsOf(broker), [...accepted, marker], 'the refused events never reach the broker')
    t.notOk(broker.published.some(e => /too-many/.test(e.body)))
  }
)

t.test(
  'an outbox that cannot write (the file locked by another writer): 503 EVG_SPOOL_UNAVAILABLE, never 202, never published',
  async t => {
    const config = testConfig(t, SPOOL)
    const broker = new MemoryBroker()
    const app = await buildApp(config, { broker })
    t.teardown(() => app.close())
    await app.ready()
    // Another connection holds the write lock past the writer's busy timeout (5 s): SQLITE_BUSY.
    const blocker = new Database(join(config.DATA_DIR, 'outbox.db'))
    t.teardown(() => { if (blocker.open) blocker.close() })
    blocker.exec('BEGIN IMMEDIATE')
    const res = await app.inject(post('call.ended', call('unstored')))
    t.equal(res.statusCode, 503)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.match(res.json(), { code: 'EVG_SPOOL_UNAVAILABLE', reason: 'sqlite_busy' })
    t.ok(Number(res.headers['retry-after']) > 0, 'Retry-After')
    blocker.exec('ROLLBACK')
    blocker.close()
    const later = await app.inject(post('call.ended', call('stored')))
    t.equal(later.statusCode, 202, 'works again once it can write')
    await until('the later event to be published', () => idsOf(broker).includes(later.json().id))
    await flush(app, broker)
    t.notOk(broker.published.some(e => /unstored/.test(e.body)), 'the refused event was not kept')
  }
)

t.test('Idempotency-Key with spool: a repeat gets the same id and status queued; published once', async t => {
  const { app, broker } = await build(t, SPOOL)
  const first = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'spooled-1' }))
  t.equal(first.statusCode, 202)
  t.equal(first.json().status, 'queued')
  const repeat = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'spooled-1' }))
  t.equal(repeat.statusCode, 202)
  t.same(repeat.json(), first.json(), 'the same answer: id and status queued')
  t.equal(repeat.headers['idempotency-replayed'], 'true')
  await until('the event to be published', () => idsOf(broker).includes(first.json().id))
  const late = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'spooled-1' }))
  t.same(late.json(), first.json(), 'after publishing too')
  await flush(app, broker)
  t.same(idsOf(broker).filter(id => id === first.json().id), [first.json().id], 'published once')
})

t.test('a batch with some events refused: 207, the accepted ones queued, and published', async t => {
  const { app, broker } = await build(t, SPOOL)
  const res = await app.inject(postBatch([
    { type: 'call.ended', data: call('batch-1') },
    { type: 'call.ended', data: { ...exampleOf('call.ended'), outcome: 'nope' } },
    { type: 'call.ended', data: call('batch-3') }
  ]))
  t.equal(res.statusCode, 207)
  const { results } = res.json()
  t.match(results, [{ status: 'queued', id: String }, { error: { code: 'EVG_VALIDATION' } }, { status: 'queued', id: String }])
  await until('both to be published', () => broker.published.length >= 2)
  await flush(app, broker)
  t.same(idsOf(broker).slice(0, 2), [results[0].id, results[2].id], 'in request order; the invalid one never')
  const all = await app.inject(postBatch([{ type: 'call.ended', data: call('batch-4') }, { type: 'call.ended', data: call('batch-5') }]))
  t.equal(all.statusCode, 202)
  t.same(all.json().results.map((r: { status: string }) => r.status), ['queued', 'queued'])
})

t.test('a routes file with one spooled and one sync destination: a type going to both is queued, and both get it', async t => {
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify({
    destinations: {
      spooled: { broker: 'rabbitmq', exchange: 'spooled.events', delivery: 'spool' },
      direct: { broker: 'rabbitmq', exchange: 'direct.events' }
    },
    routes: [{ types: ['call.*'], to: ['spooled', 'direct'] }, { types: ['*'], to: ['direct'] }]
  }))
  const brokers = new Map<string, MemoryBroker>()
  const { app } = await build(t, { ROUTES_FILE: path }, {
    brokers: d => {
      const b = new MemoryBroker(d.name)
      brokers.set(d.name, b)
      return b
    }
  })
  const spooled = brokers.get('spooled') as MemoryBroker
  const direct = brokers.get('direct') as MemoryBroker
  const both = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(both.statusCode, 202)
  t.equal(both.json().status, 'queued')
  t.same(idsOf(direct), [both.json().id], 'the sync destination has it when the answer comes')
  await until('the spooled destination to get it', () => idsOf(spooled).includes(both.json().id))
  const only = await app.inject(post('audit.recorded', exampleOf('audit.recorded')))
  t.equal(only.json().status, 'published', 'a type going only to the sync destination is published')
  t.ok(idsOf(direct).includes(only.json().id))
  const ready = (await app.inject('/health/ready')).json()
  t.match(ready.destinations, [{ name: 'spooled', delivery: 'spool', outbox: { up: true } }, { name: 'direct', delivery: 'sync' }])
  t.notOk('outbox' in ready.destinations[1], 'no outbox for a sync destination')
  t.same((await app.inject('/v1/admin/outbox')).json().destinations.map((d: { name: string }) => d.name), ['spooled'])
})

t.test('shutdown while events wait: no crash; a new gateway on the same DATA_DIR publishes them, in order', async t => {
  const config = testConfig(t, SPOOL)
  const down = new Switchable()
  down.up = false
  const first = await buildApp(config, { broker: down })
  await first.ready()
  const ids: string[] = []
  for (const n of [1, 2, 3]) {
    const res = await first.inject(post('call.ended', call(`waiting-${n}`)))
    t.equal(res.json().status, 'queued')
    ids.push(res.json().id)
  }
  await first.close()
  t.equal(down.published.length, 0)

  const broker = new MemoryBroker()
  const second = await buildApp(config, { broker })
  t.teardown(() => second.close())
  await second.ready()
  await until('the waiting events to be published', () => broker.published.length >= 3)
  t.same(idsOf(broker), ids, 'each once, in accept order')
  t.match(await outboxUntil(second, 'drained', d => d.depth === 0), { depth: 0, deadLetters: 0 })
})

t.test('metrics: gateway_outbox_* after a scrape', async t => {
  const broker = new Switchable()
  broker.up = false
  const { app } = await build(t, SPOOL, { broker })
  await app.inject(post('call.ended', call('m-1')))
  await app.inject(post('call.ended', call('m-2')))
  const waiting = (await app.inject('/metrics')).body
  t.match(waiting, /gateway_outbox_depth\{destination="local"\} 2/)
  t.match(waiting, /gateway_outbox_oldest_age_seconds\{destination="local"\} [0-9.e-]+/)
  t.match(waiting, /gateway_outbox_dead_letters\{destination="local"\} 0/)
  t.match(waiting, /gateway_outbox_events_total\{destination="local",outcome="queued"\} 2/)
  broker.up = true
  await until('both to be published', () => broker.published.length >= 2)
  const after = await until('the gauges to show an empty outbox', async () => {
    const body = (await app.inject('/metrics')).body
    return /gateway_outbox_depth\{destination="local"\} 0/.test(body) && body
  })
  t.match(after, /gateway_outbox_events_total\{destination="local",outcome="published"\} 2/)
  t.match(after, /gateway_outbox_oldest_age_seconds\{destination="local"\} 0/)
})

t.test('the outbox of a spooled destination survives a restart of the gateway: dead letters too', async (t: Test) => {
  const config = testConfig(t, SPOOL)
  const broker = new MemoryBroker()
  broker.failNext(1, refusal)
  const first = await buildApp(config, { broker })
  await first.ready()
  const id = (await first.inject(post('call.ended', call('kept-dead')))).json().id
  await outboxUntil(first, 'one dead letter', d => d.deadLetters === 1)
  await first.close()
  const second = await buildApp(config, { broker: new MemoryBroker() })
  t.teardown(() => second.close())
  await second.ready()
  t.match((await second.inject('/v1/admin/dead-letters')).json().deadLetters, [{ eventId: id }])
  t.match((await second.inject('/v1/admin/outbox')).json().destinations, [{ name: 'local', deadLetters: 1 }])
})

t.test(
  'a destination that knows it would refuse an event (too large for SQS or EventBridge) answers 413 at once: no 202, no dead letter',
  async t => {
    /** Refuses, before any publish, bodies over 600 bytes, as the SQS and EventBridge adapters do over their limits. */
    class Limited extends MemoryBroker {
      refusal (event: OutgoingEvent): BrokerError | undefined {
        if (event.body.length <= 600) return undefined
        return new BrokerError(`the message is ${event.body.length} bytes; SQS takes at most 600`, {
          retryable: false, reason: 'too_large', tooLarge: true
        })
      }
    }
    const broker = new Limited()
    const { app } = await build(t, SPOOL, { broker })
    const big = await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: 'x'.repeat(2000) }))
    t.equal(big.statusCode, 413)
    t.match(big.json(), { code: 'EVG_TOO_LARGE', detail: /takes at most 600/, reason: 'too_large' })
    const batch = await app.inject(postBatch([
      { type: 'call.ended', data: call('small') },
      { type: 'call.ended', data: { ...exampleOf('call.ended'), transcript: 'x'.repeat(2000) } }
    ]))
    t.equal(batch.statusCode, 207)
    t.match(
      batch.json().results,
      [{ status: 'queued' }, { error: { code: 'EVG_TOO_LARGE' } }],
      'the small one is queued, the large one refused'
    )
    await until('the small one to be published', () => broker.published.length === 1)
    t.same((await app.inject('/v1/admin/dead-letters')).json().deadLetters, [], 'nothing set aside')
    t.equal((await outboxUntil(app, 'drained', d => d.depth === 0)).depth, 0)
  }
)

t.test('admin keys scoped to tenants: a key for one tenant lists, pages, replays and purges only its dead letters', async t => {
  const sha = (key: string) => createHash('sha256').update(key).digest('hex')
  const dir = t.testdir({
    'keys.json': JSON.stringify({
      keys: [
        { name: 'publisher', sha256: sha('publisher-key'), tenants: ['*'], eventTypes: ['*'] },
        { name: 'admin-a', sha256: sha('admin-a-key'), tenants: [TENANT], eventTypes: ['*'], admin: true },
        { name: 'admin-prefix', sha256: sha('admin-prefix-key'), tenants: [`${TENANT.slice(0, 4)}*`], eventTypes: ['*'], admin: true },
        { name: 'admin-all', sha256: sha('admin-all-key'), tenants: ['*'], eventTypes: ['*'], admin: true }
      ]
    })
  })
  const { app, broker } = await build(t, { ...SPOOL, API_KEYS_FILE: join(dir, 'keys.json') })
  const as = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` })
  type Dead = { id: number, tenantId: string, eventId: string }
  const list = async (key: string, query = '') => {
    const res = await app.inject({ method: 'GET', url: `/v1/admin/dead-letters${query}`, headers: as(key) })
    t.equal(res.statusCode, 200)
    return res.json() as { deadLetters: Dead[], next: number }
  }
  broker.failNext(5, refusal)
  const sent: { tenant: string, id: string }[] = []
  for (const [n, tenant] of [TENANT, OTHER_TENANT, TENANT, OTHER_TENANT, TENANT].entries()) {
    const res = await app.inject(post('call.ended', call(`scoped-${n}`), { 'x-tenant-id': tenant, ...as('publisher-key') }))
    sent.push({ tenant, id: res.json().id })
    await until(`dead letter ${n}`, async () => (await list('admin-all-key')).deadLetters.length > n)
  }
  const mine = sent.filter(s => s.tenant === TENANT).map(s => s.id)
  const theirs = sent.filter(s => s.tenant === OTHER_TENANT).map(s => s.id)
  const all = (await list('admin-all-key')).deadLetters
  t.same(all.map(d => d.eventId), sent.map(s => s.id), 'the * key sees every tenant\'s')
  t.same((await list('admin-a-key')).deadLetters.map(d => d.eventId), mine, 'tenant A\'s key: only A\'s')
  t.same((await list('admin-prefix-key')).deadLetters.map(d => d.eventId), mine, 'a prefix pattern: the tenants it matches')
  const page1 = await list('admin-a-key', '?limit=2')
  const page2 = await list('admin-a-key', `?limit=2&after=${page1.next}`)
  const page3 = await list('admin-a-key', `?limit=2&after=${page2.next}`)
  t.same([...page1.deadLetters, ...page2.deadLetters].map(d => d.eventId), mine, 'pages over A\'s own')
  t.same(page3, { deadLetters: [], next: page2.next })

  const outbox = await app.inject({ method: 'GET', url: '/v1/admin/outbox', headers: as('admin-a-key') })
  t.equal(outbox.statusCode, 403, 'the outbox\'s counts are every tenant\'s: not for a scoped key')
  t.equal(outbox.json().code, 'EVG_FORBIDDEN')
  t.equal((await app.inject({ method: 'GET', url: '/v1/admin/outbox', headers: as('admin-all-key') })).statusCode, 200)

  const idOf = (eventId: string | undefined) => all.find(d => d.eventId === eventId)?.id ?? 0
  const purge = await app.inject({
    method: 'POST',
    url: '/v1/admin/dead-letters/purge',
    headers: as('admin-a-key'),
    payload: { ids: [idOf(theirs[0]), idOf(mine[0])] }
  })
  t.same(purge.json(), { purged: 1 }, 'B\'s id is not touched, and not counted')
  const replay = await app.inject({
    method: 'POST', url: '/v1/admin/dead-letters/replay', headers: as('admin-a-key'), payload: { all: true }
  })
  t.same(replay.json(), { replayed: 2 }, 'all: A\'s')
  await until('A\'s replayed to be published', () => idsOf(broker).includes(mine[2] ?? ''))
  t.same((await list('admin-a-key')).deadLetters, [])
  t.same((await list('admin-all-key')).deadLetters.map(d => d.eventId), theirs, 'B\'s untouched')
  const byDestination = await app.inject({
    method: 'POST', url: '/v1/admin/dead-letters/replay', headers: as('admin-a-key'), payload: { destination: 'local' }
  })
  t.same(byDestination.json(), { replayed: 0 }, 'by destination: none of A\'s left')
  const rest = await app.inject({
    method: 'POST', url: '/v1/admin/dead-letters/purge', headers: as('admin-all-key'), payload: { all: true }
  })
  t.same(rest.json(), { purged: 2 }, 'the * key: every tenant\'s')
})

t.test('the events waiting for a destination gone from the routes: purged by POST /v1/admin/outbox/purge; the limits follow', {
  timeout: 60_000
}, async t => {
  const config = testConfig(t, SPOOL)
  const down = new Switchable()
  down.up = false
  const first = await buildApp(config, { broker: down })
  await first.ready()
  for (const [n, tenant] of [TENANT, OTHER_TENANT, TENANT].entries()) {
    t.equal((await first.inject(post('call.ended', call(`stranded-${n}`), { 'x-tenant-id': tenant }))).json().status, 'queued')
  }
  await first.close()

  const path = join(config.DATA_DIR, 'routes.json')
  writeFileSync(path, JSON.stringify({
    destinations: { other: { broker: 'rabbitmq', exchange: 'other.events', delivery: 'spool' } },
    routes: [{ types: ['*'], to: ['other'] }]
  }))
  const broker = new MemoryBroker()
  const second = await buildApp({ ...config, ROUTES_FILE: path, OUTBOX_MAX_EVENTS: 3 }, { broker })
  t.teardown(() => second.close())
  await second.ready()
  const full = await second.inject(post('call.ended', call('blocked')))
  t.equal(full.statusCode, 503, 'the stranded events count against OUTBOX_MAX_EVENTS')

  const live = await second.inject({ method: 'POST', url: '/v1/admin/outbox/purge', payload: { destination: 'other' } })
  t.equal(live.statusCode, 400, 'a destination spooled now: its relay would race')
  t.match(live.headers['content-type'], /^application\/problem\+json/)
  t.equal(live.json().code, 'EVG_VALIDATION')
  const purged = await second.inject({ method: 'POST', url: '/v1/admin/outbox/purge', payload: { destination: 'local' } })
  t.equal(purged.statusCode, 200)
  t.same(purged.json(), { purged: 3 })
  t.same((await second.inject({ method: 'POST', url: '/v1/admin/outbox/purge', payload: { destination: 'local' } })).json(), { purged: 0 })
  const sent = await second.inject(post('call.ended', call('unblocked')))
  t.equal(sent.statusCode, 202, 'room again: the counts followed')
  await until('published to the live destination', () => idsOf(broker).includes(sent.json().id))
  t.same(idsOf(broker), [sent.json().id], 'the stranded events were never published')
})

t.test('POST /v1/admin/outbox/purge with a key scoped to a tenant: only its waiting events', async t => {
  const sha = (key: string) => createHash('sha256').update(key).digest('hex')
  const keysDir = t.testdir({
    'keys.json': JSON.stringify({
      keys: [
        { name: 'publisher', sha256: sha('publisher-key'), tenants: ['*'], eventTypes: ['*'] },
        { name: 'admin-a', sha256: sha('admin-a-key'), tenants: [TENANT], eventTypes: ['*'], admin: true }
      ]
    })
  })
  const as = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` })
  const config = testConfig(t, { ...SPOOL, API_KEYS_FILE: join(keysDir, 'keys.json') })
  const down = new Switchable()
  down.up = false
  const first = await buildApp(config, { broker: down })
  await first.ready()
  for (const [n, tenant] of [TENANT, OTHER_TENANT, TENANT].entries()) {
    const res = await first.inject(post('call.ended', call(`stranded-${n}`), { 'x-tenant-id': tenant, ...as('publisher-key') }))
    t.equal(res.json().status, 'queued')
  }
  await first.close()
  const path = join(config.DATA_DIR, 'routes.json')
  writeFileSync(path, JSON.stringify({
    destinations: { other: { broker: 'rabbitmq', exchange: 'other.events', delivery: 'spool' } },
    routes: [{ types: ['*'], to: ['other'] }]
  }))
  const second = await buildApp({ ...config, ROUTES_FILE: path }, { broker: new MemoryBroker() })
  t.teardown(() => second.close())
  await second.ready()
  const purge = () => second.inject({
    method: 'POST', url: '/v1/admin/outbox/purge', headers: as('admin-a-key'), payload: { destination: 'local' }
  })
  t.same((await purge()).json(), { purged: 2 }, 'A\'s two, not B\'s')
  t.same((await purge()).json(), { purged: 0 })
  const publisher = await second.inject({
    method: 'POST', url: '/v1/admin/outbox/purge', headers: as('publisher-key'), payload: { destination: 'local' }
  })
  t.equal(publisher.statusCode, 403, 'not an admin key')
})
