import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { BrokerError, type OutgoingEvent, type PublishOutcome } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { TENANT, build, exampleOf, post, postBatch, testConfig } from '../helper.js'

// Idempotency on one gateway with the embedded store (SQLite); test/integration/fleet.test.ts
// runs the same promises across replicas sharing Redis.

t.test('a repeat is recognised by its JSON value: any key order, any number spelling', async t => {
  const { app, broker } = await build(t)
  const first = await app.inject(post('call.ended', '{"call_id":"c-1","duration":180,"outcome":"completed","transcript":"hello"}', {
    'idempotency-key': 'sem-1'
  }))
  const reordered = await app.inject(post(
    'call.ended',
    '{ "transcript": "hello", "outcome": "completed", "duration": 1.8e2, "call_id": "c-1" }',
    { 'idempotency-key': 'sem-1' }
  ))
  t.equal(first.statusCode, 202)
  t.equal(reordered.statusCode, 202)
  t.equal(reordered.json().id, first.json().id)
  t.equal(reordered.headers['idempotency-replayed'], 'true')
  t.equal(broker.published.length, 1)
  const changed = await app.inject(post('call.ended', '{"call_id":"c-1","duration":181,"outcome":"completed","transcript":"hello"}', {
    'idempotency-key': 'sem-1'
  }))
  t.equal(changed.json().code, 'EVG_IDEMPOTENCY_CONFLICT')
})

t.test('a repeat that outwaits IDEMPOTENCY_WAIT_MS gets 409 EVG_IDEMPOTENCY_IN_PROGRESS with Retry-After, then the answer', async t => {
  const { app, broker } = await build(t, { IDEMPOTENCY_WAIT_MS: '50' })
  const release = broker.hold()
  const first = app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'slow' }))
  while (broker.calls === 0) await new Promise(resolve => setImmediate(resolve))
  const repeat = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'slow' }))
  t.equal(repeat.statusCode, 409)
  t.match(repeat.headers['content-type'], /^application\/problem\+json/)
  t.equal(repeat.json().code, 'EVG_IDEMPOTENCY_IN_PROGRESS')
  t.equal(repeat.headers['retry-after'], '1')
  release()
  const answer = await first
  t.equal(answer.statusCode, 202)
  const later = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'slow' }))
  t.equal(later.json().id, answer.json().id)
  t.equal(broker.published.length, 1)
  t.match((await app.inject('/metrics')).body, /gateway_idempotency_waits_total\{outcome="in_progress"\} 1/)
})

t.test('20 identical batches at once, with per-event keys, publish each event once and all get the same ids', async t => {
  const { app, broker } = await build(t)
  const release = broker.hold()
  const events = ['a', 'b', 'c', 'd', 'e'].map(
    k => ({ type: 'call.ended', data: { ...exampleOf('call.ended'), call_id: k }, idempotencyKey: `batch-${k}` })
  )
  const answers = Array.from({ length: 20 }, () => app.inject(postBatch(events)))
  while (broker.calls === 0) await new Promise(resolve => setImmediate(resolve))
  release()
  const responses = await Promise.all(answers)
  t.same([...new Set(responses.map(r => r.statusCode))], [202])
  const ids = responses.map(r => r.json().results.map((x: { id: string }) => x.id).join(','))
  t.equal(new Set(ids).size, 1, 'every answer names the same five events')
  t.equal(broker.published.length, 5)
  // a single POST with one of the batch's keys is the same event
  const single = await app.inject(post('call.ended', events[2]?.data, { 'idempotency-key': 'batch-c' }))
  t.equal(single.json().id, responses[0]?.json().results[2].id)
  t.equal(broker.published.length, 5)
})

t.test('Idempotency-Key on a batch keys the whole request', async t => {
  const { app, broker } = await build(t, { RETRY_MAX_ATTEMPTS: '1' })
  const events = [{ type: 'call.ended', data: exampleOf('call.ended') }, { type: 'audit.recorded', data: exampleOf('audit.recorded') }]
  const first = await app.inject(postBatch(events, { 'idempotency-key': 'whole-1' }))
  t.equal(first.statusCode, 202)
  const again = await app.inject(postBatch(events, { 'idempotency-key': 'whole-1' }))
  t.equal(again.statusCode, 202)
  t.same(again.json(), first.json(), 'the same results, the same ids')
  t.equal(broker.published.length, 2, 'nothing published again')

  // the key stands for that batch: another one under it is refused whole, even one that only adds an event
  const changed = await app.inject(postBatch(
    [events[0], { type: 'audit.recorded', data: { ...exampleOf('audit.recorded'), action: 'other' } }],
    { 'idempotency-key': 'whole-1' }
  ))
  t.equal(changed.statusCode, 409)
  t.equal(changed.json().code, 'EVG_IDEMPOTENCY_CONFLICT')
  const longer = await app.inject(postBatch(
    [...events, { type: 'call.ended', data: exampleOf('call.ended') }],
    { 'idempotency-key': 'whole-1' }
  ))
  t.equal(longer.statusCode, 409)
  t.equal(broker.published.length, 2, 'nothing of either published')
  // its events' keys cannot be met by a client's key (which has no space)
  const single = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'whole-1#0' }))
  t.equal(single.statusCode, 202)
  t.not(single.json().id, first.json().results[0].id)
  t.equal(broker.published.length, 3)

  const both = await app.inject(postBatch([{ ...events[0], idempotencyKey: 'mine' }], { 'idempotency-key': 'whole-2' }))
  t.equal(both.statusCode, 400)
  t.equal(both.json().code, 'EVG_VALIDATION')
  t.match(both.json().errors, [{ path: '/events/0/idempotencyKey' }])

  // a batch that failed leaves its key free: the retry publishes
  broker.failNext(1)
  const failed = await app.inject(postBatch(events, { 'idempotency-key': 'whole-3' }))
  t.equal(failed.statusCode, 503)
  const retried = await app.inject(postBatch(events, { 'idempotency-key': 'whole-3' }))
  t.equal(retried.statusCode, 202)
  t.equal(broker.published.length, 5)
})

t.test('a repeat after a failure that may have been a success sends the same event, so consumers deduplicating by id see one', async t => {
  // A broker that got the event but whose answer was lost (a timeout): the gateway cannot know.
  class AnswerLost extends MemoryBroker {
    lost = 1
    override async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
      const outcomes = await super.publish(events)
      if (this.lost-- <= 0) return outcomes
      return events.map(() => ({ ok: false, error: new BrokerError('no answer in time', { retryable: true, reason: 'timeout' }) }))
    }
  }
  const { app, broker } = await build(t, { RETRY_MAX_ATTEMPTS: '1' }, { broker: new AnswerLost() })
  const first = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'lost-answer' }))
  t.equal(first.statusCode, 503)
  const repeat = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'lost-answer' }))
  t.equal(repeat.statusCode, 202)
  t.equal(broker.published.length, 2, 'at least once: the broker has it twice')
  t.same(broker.published.map(e => e.event.id), [repeat.json().id, repeat.json().id], 'under one id')
})

t.test('keys survive a restart, and the hourly purge drops what is older than 24 hours through an index', async t => {
  const config = testConfig(t)
  const first = await buildApp(config)
  await first.ready()
  const sent = await first.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'durable' }))
  await first.close()
  const second = await buildApp(config)
  t.teardown(() => second.close())
  await second.ready()
  const repeat = await second.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'durable' }))
  t.equal(repeat.json().id, sent.json().id)
  t.equal(repeat.headers['idempotency-replayed'], 'true')
})

t.test('read-back shows an API key only the types it may publish', async t => {
  const sha = (key: string) => createHash('sha256').update(key).digest('hex')
  const dir = t.testdir({
    'keys.json': JSON.stringify({
      keys: [
        { name: 'comms', sha256: sha('comms-key'), tenants: [TENANT], eventTypes: ['call.*'] },
        { name: 'all', sha256: sha('all-key'), tenants: [TENANT], eventTypes: ['*'] }
      ]
    })
  })
  const app = await buildApp(testConfig(t, { BROKER: 'local', API_KEYS_FILE: join(dir, 'keys.json') }))
  t.teardown(() => app.close())
  await app.ready()
  await app.inject(post('call.ended', exampleOf('call.ended'), { authorization: 'Bearer all-key' }))
  await app.inject(post('audit.recorded', exampleOf('audit.recorded'), { authorization: 'Bearer all-key' }))
  const read = (key: string, query = '') => app.inject({
    method: 'GET',
    url: `/v1/events${query}`,
    headers: { 'x-tenant-id': TENANT, authorization: `Bearer ${key}` }
  })
  t.same((await read('all-key')).json().events.map((e: { type: string }) => e.type), ['call.ended', 'audit.recorded'])
  t.same((await read('comms-key')).json().events.map((e: { type: string }) => e.type), ['call.ended'], 'no audit.recorded for a call.* key')
  const named = await read('comms-key', '?type=audit.recorded')
  t.equal(named.statusCode, 403)
  t.equal(named.json().code, 'EVG_FORBIDDEN')
})
