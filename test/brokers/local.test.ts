import t from 'tap'
import { buildApp } from '../../src/app.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { LocalBroker } from '../../src/brokers/local.js'
import { openDatabase } from '../../src/storage/database.js'
import { OTHER_TENANT, TENANT, dataDir, exampleOf, outgoing, post, testConfig } from '../helper.js'

t.test('BROKER=local: every example is published and read back, oldest first, per tenant', async t => {
  const config = testConfig(t)
  const app = await buildApp(config)
  t.teardown(() => app.close())
  const ids: string[] = []
  for (const entry of BUILTIN_ENTRIES) {
    const res = await app.inject(post(entry.type, exampleOf(entry.type)))
    t.equal(res.statusCode, 202, entry.type)
    t.equal(res.json().status, 'published')
    ids.push(res.json().id)
  }
  await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': OTHER_TENANT }))

  const read = await app.inject({ method: 'GET', url: '/v1/events?limit=1000', headers: { 'x-tenant-id': TENANT } })
  t.equal(read.statusCode, 200)
  const { events, next } = read.json()
  t.same(events.map((e: { id: string }) => e.id), ids, 'all of this tenant\'s events, in order')
  t.ok(events.every((e: { tenantid: string }) => e.tenantid === TENANT), 'no other tenant\'s event')
  t.match(events[0], { specversion: '1.0', type: BUILTIN_ENTRIES[0]?.type, data: exampleOf(BUILTIN_ENTRIES[0]?.type as string) })

  const page1 = (await app.inject({ method: 'GET', url: '/v1/events?limit=5', headers: { 'x-tenant-id': TENANT } })).json()
  const page2 = (await app.inject({
    method: 'GET',
    url: `/v1/events?limit=5&after=${page1.next}`,
    headers: { 'x-tenant-id': TENANT }
  })).json()
  t.same([...page1.events, ...page2.events].map((e: { id: string }) => e.id), ids.slice(0, 10), 'paging with the cursor')
  const end = (await app.inject({ method: 'GET', url: `/v1/events?after=${next}`, headers: { 'x-tenant-id': TENANT } })).json()
  t.same(end, { events: [], next }, 'past the end: nothing, same cursor')

  const byType = (await app.inject({ method: 'GET', url: '/v1/events?type=call.ended', headers: { 'x-tenant-id': OTHER_TENANT } })).json()
  t.equal(byType.events.length, 1)
  t.equal(byType.events[0].tenantid, OTHER_TENANT)
})

t.test('events survive a restart of the gateway', async t => {
  const config = testConfig(t)
  const first = await buildApp(config)
  await first.ready()
  const res = await first.inject(post('call.started', exampleOf('call.started')))
  t.equal(res.statusCode, 202, 'taken, before its id is used')
  await first.close()
  const second = await buildApp(config)
  t.teardown(() => second.close())
  const read = (await second.inject({ method: 'GET', url: '/v1/events', headers: { 'x-tenant-id': TENANT } })).json()
  t.same(read.events.map((e: { id: string }) => e.id), [res.json().id])
})

t.test('publishes in the same tick share one transaction; a repeated id is stored once', async t => {
  const db = openDatabase(dataDir(t))
  const broker = new LocalBroker(db)
  t.teardown(() => db.close())
  const event = (id: string) => outgoing(id)
  const results = await Promise.all([broker.publish([event('a'), event('b')]), broker.publish([event('c')]), broker.publish([event('a')])])
  t.same(results.flat().map(r => r.ok), [true, true, true, true])
  t.same(broker.read({ tenantId: TENANT, limit: 10 }).events, ['{"id":"a"}', '{"id":"b"}', '{"id":"c"}'])
  t.same(await broker.health(), { up: true })
  await broker.close()
  t.same((await broker.health()).up, false)
  const afterClose = await broker.publish([event('d')])
  t.match(afterClose[0], { ok: false, error: { retryable: true } })
})

t.test('a write failure is classified, and answered as a problem', async t => {
  const db = openDatabase(dataDir(t))
  const broker = new LocalBroker(db)
  db.exec('DROP TABLE events')
  const [outcome] = await broker.publish([outgoing('z', {}, '{}')])
  t.match(outcome, { ok: false, error: { retryable: false } })
  db.close()
})

t.test('read-back is only for the local broker', async t => {
  const { build } = await import('../helper.js')
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/v1/events', headers: { 'x-tenant-id': TENANT } })
  t.equal(res.statusCode, 404)
  t.match(res.json(), { code: 'EVG_NOT_FOUND', detail: /local destination/ })
})
