import t from 'tap'
import { BrokerError } from '../../src/brokers/broker.js'
import { build, exampleOf, postBatch } from '../helper.js'

t.test('all events taken: 202 with results in request order, one broker call', async t => {
  const { app, broker } = await build(t)
  const res = await app.inject(postBatch([
    { type: 'call.started', data: exampleOf('call.started') },
    { type: 'call.ended', data: exampleOf('call.ended') },
    { type: 'speaker.onboarded', data: exampleOf('speaker.onboarded') }
  ]))
  t.equal(res.statusCode, 202)
  const { results } = res.json()
  t.same(results.map((r: { type: string }) => r.type), ['call.started', 'call.ended', 'speaker.onboarded'])
  t.ok(results.every((r: { status: string }) => r.status === 'published'))
  t.equal(broker.calls, 1, 'published together')
  t.same(broker.published.map(e => e.envelope.id), results.map((r: { id: string }) => r.id))
})

t.test('some refused: 207 with a problem per refused event', async t => {
  const { app, broker } = await build(t)
  const res = await app.inject(postBatch([
    { type: 'call.ended', data: exampleOf('call.ended') },
    { type: 'call.ended', data: { ...exampleOf('call.ended'), outcome: 'nope' } },
    { type: 'no.such.type', data: {} }
  ]))
  t.equal(res.statusCode, 207)
  const { results } = res.json()
  t.equal(results[0].status, 'published')
  t.equal(results[1].error.code, 'EVG_VALIDATION')
  t.same(results[1].error.errors.map((e: { path: string }) => e.path), ['/events/1/data/outcome'])
  t.equal(results[2].error.code, 'EVG_UNKNOWN_TYPE')
  t.equal(broker.published.length, 1)
})

t.test('none taken: a problem answer, with the per-event results', async t => {
  const { app } = await build(t)
  const invalid = await app.inject(postBatch([{ type: 'call.ended', data: {} }, { type: 'call.ended', data: { x: 1 } }]))
  t.equal(invalid.statusCode, 400)
  t.equal(invalid.json().code, 'EVG_VALIDATION')
  t.equal(invalid.json().results.length, 2)
})

t.test('broker down for the whole batch: 503 with Retry-After', async t => {
  const { app, broker } = await build(t, { RETRY_MAX_ATTEMPTS: '2' })
  broker.failNext(2)
  const res = await app.inject(postBatch([{ type: 'call.ended', data: exampleOf('call.ended') }]))
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'EVG_BROKER_UNAVAILABLE')
  t.ok(res.headers['retry-after'])
})

t.test('a permanent refusal in the batch: 502 problem', async t => {
  const { app, broker } = await build(t)
  broker.failNext(1, new BrokerError('malformed', { retryable: false, reason: 'malformed' }))
  const res = await app.inject(postBatch([{ type: 'call.ended', data: exampleOf('call.ended') }]))
  t.equal(res.statusCode, 502)
  t.equal(res.json().code, 'EVG_BROKER_REJECTED')
})

t.test('batch limits and shape', async t => {
  const { app } = await build(t, { BATCH_MAX_EVENTS: '2' })
  const tooMany = await app.inject(postBatch([1, 2, 3].map(() => ({ type: 'call.ended', data: exampleOf('call.ended') }))))
  t.equal(tooMany.statusCode, 400)
  t.match(tooMany.json().errors, [{ path: '/events' }])
  const empty = await app.inject(postBatch([]))
  t.equal(empty.statusCode, 400)
  const extra = await app.inject({ ...postBatch([]), payload: JSON.stringify({ events: [{ type: 'call.ended', data: {}, priority: 1 }] }) })
  t.equal(extra.statusCode, 400)
  t.match(extra.json().errors, [{ path: '/events/0/priority' }])
})

t.test('per-event idempotency keys: replay, duplicates inside the batch, conflicts', async t => {
  const { app, broker } = await build(t)
  const a = exampleOf('call.ended')
  const first = await app.inject(postBatch([{ type: 'call.ended', data: a, idempotencyKey: 'e-1' }]))
  const firstId = first.json().results[0].id
  const second = await app.inject(postBatch([
    { type: 'call.ended', data: a, idempotencyKey: 'e-1' },
    { type: 'call.started', data: exampleOf('call.started'), idempotencyKey: 'e-2' },
    { type: 'call.started', data: exampleOf('call.started'), idempotencyKey: 'e-2' },
    { type: 'call.ended', data: { ...a, duration: 2 }, idempotencyKey: 'e-1' }
  ]))
  t.equal(second.statusCode, 207)
  const r = second.json().results
  t.equal(r[0].id, firstId, 'replayed from the first batch')
  t.equal(r[2].id, r[1].id, 'the same key twice in one batch is one event')
  t.equal(r[3].error.code, 'EVG_IDEMPOTENCY_CONFLICT')
  t.equal(broker.published.length, 2)
})

t.test('gateway_batch_size: one sample per valid batch, its number of events; a batch refused as a whole is none', async t => {
  const { app } = await build(t)
  await app.inject(postBatch([{ type: 'call.ended', data: exampleOf('call.ended') }]))
  await app.inject(postBatch(Array.from({ length: 7 }, () => ({ type: 'call.ended', data: exampleOf('call.ended') }))))
  await app.inject(postBatch([{ type: 'call.ended', data: exampleOf('call.ended'), extra: 1 }]))
  const text = (await app.inject('/metrics')).body
  t.match(text, /^gateway_batch_size_count 2$/m)
  t.match(text, /^gateway_batch_size_sum 8$/m)
  t.match(text, /^gateway_batch_size_bucket\{le="5"\} 1$/m)
  t.match(text, /^gateway_batch_size_bucket\{le="10"\} 2$/m)
})
