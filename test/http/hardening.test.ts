import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { build, dataDir, exampleOf, post, postBatch, TENANT } from '../helper.js'

t.test('a number too large to represent is refused before validation, not stored as null', async t => {
  const { app, broker } = await build(t)
  const body = JSON.stringify(exampleOf('call.ended')).replace('"duration":180', '"duration":1e400')
  const res = await app.inject(post('call.ended', body))
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'EVG_VALIDATION', detail: /too large/ })
  const digits = await app.inject(post(
    'campaign.completed',
    JSON.stringify(exampleOf('campaign.completed')).replace('"total_calls":120', `"total_calls":${'9'.repeat(400)}`)
  ))
  t.equal(digits.statusCode, 400)
  const fine = await app.inject(post('call.ended', JSON.stringify({ ...exampleOf('call.ended'), transcript: 'says 1e400 out loud' })))
  t.equal(fine.statusCode, 202, 'the same text inside a string is just text')
  t.equal(broker.published.length, 1)
})

t.test('a read-back cursor must be a safe integer', async t => {
  const { app } = await build(t, { BROKER: 'local' }, { broker: undefined })
  const res = await app.inject({ method: 'GET', url: '/v1/events?after=1e400', headers: { 'x-tenant-id': TENANT } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'EVG_VALIDATION')
  t.doesNotThrow(() => JSON.parse(res.body), 'the answer is JSON')
})

t.test('the same UUID in another case is the same tenant', async t => {
  const { app, broker } = await build(t)
  const upper = TENANT.toUpperCase()
  const first = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': upper, 'idempotency-key': 'case-1' }))
  t.equal(first.statusCode, 202)
  t.equal(broker.published[0]?.envelope.tenantid, TENANT, 'the envelope carries the lower-case id')
  const second = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': TENANT, 'idempotency-key': 'case-1' }))
  t.equal(second.headers['idempotency-replayed'], 'true', 'one idempotency namespace')
  t.equal(second.json().id, first.json().id)
  t.equal(broker.published.length, 1)
})

t.test('a routing key over 255 bytes is a 400 naming the field it is made of, before any publish', async t => {
  const dir = dataDir(t)
  writeFileSync(join(dir, 'order.json'), JSON.stringify({
    type: 'order.placed',
    description: 'An order was placed.',
    routingKey: 'shop.order.{region}',
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['region'],
      properties: { region: { type: 'string', maxLength: 1000 } },
      examples: [{ region: 'eu' }]
    }
  }))
  const { app, broker } = await build(t, { EVENT_CATALOG_DIR: dir })
  const fits = await app.inject(post('order.placed', { region: 'r'.repeat(244) }))
  t.equal(fits.statusCode, 202, '255 bytes fit')
  const single = await app.inject(post('order.placed', { region: 'r'.repeat(245) }))
  t.equal(single.statusCode, 400)
  t.match(single.json(), { code: 'EVG_VALIDATION', errors: [{ path: '/region', message: /longer than 255 bytes/ }] })
  const inBatch = await app.inject(postBatch([{ type: 'order.placed', data: { region: 'r'.repeat(300) } }]))
  t.equal(inBatch.statusCode, 400)
  t.match(inBatch.json().results[0].error.errors, [{ path: '/events/0/data/region' }])
  t.equal(broker.published.length, 1)
})

t.test('validation problems list at most 10 errors per event and count the rest', async t => {
  const { app, broker } = await build(t)
  const data = { ...exampleOf('sentiment.analyzed'), keywords: Array.from({ length: 60 }, () => 7) }
  const res = await app.inject(post('sentiment.analyzed', data))
  t.equal(res.statusCode, 400)
  t.equal(res.json().errors.length, 10)
  t.equal(res.json().errorsOmitted, 50, 'the rest are counted')
  const many = await app.inject(postBatch(Array.from({ length: 100 }, () => ({ type: 'sentiment.analyzed', data }))))
  t.equal(many.statusCode, 400)
  t.ok(many.body.length < 250000, `the answer stays small: ${many.body.length} bytes`)
  const listed = many.json().results.reduce((n: number, r: { error: { errors: unknown[] } }) => n + r.error.errors.length, 0)
  t.equal(listed, 100, 'at most 100 errors listed in the whole batch')
  t.equal(many.json().results[99].error.errorsOmitted, 60, 'the rest are counted per event')
  t.equal(broker.calls, 0)
})

t.test('request bodies in flight are bounded: past the budget, 503 at once, before the body is read', async t => {
  const { app, broker } = await build(t, { BODY_LIMIT_BYTES: '32768', HTTP_MAX_INFLIGHT_BODY_BYTES: '65536' })
  const big = { ...exampleOf('call.ended'), transcript: 'x'.repeat(30000) }
  const release = broker.hold()
  const held = [app.inject(post('call.ended', big)), app.inject(post('call.ended', big))]
  while (broker.calls < 2) await new Promise(resolve => setImmediate(resolve))
  const refused = await app.inject(post('call.ended', big))
  t.equal(refused.statusCode, 503)
  t.match(refused.json(), { code: 'EVG_OVERLOADED', detail: /in flight/ })
  t.equal(refused.headers['retry-after'], '1')
  t.equal(refused.headers.connection, 'close')
  release()
  t.same((await Promise.all(held)).map(r => r.statusCode), [202, 202])
  t.equal((await app.inject(post('call.ended', big))).statusCode, 202, 'room again once they are answered')
  t.match((await app.inject('/metrics')).body, /gateway_events_rejected_total\{type="call.ended",code="EVG_OVERLOADED"\} 1/)
})

t.test('an event with a huge collection gets its first error only, not one per element', async t => {
  const { app } = await build(t)
  const res = await app.inject(post('sentiment.analyzed', {
    ...exampleOf('sentiment.analyzed'),
    keywords: Array.from({ length: 20000 }, () => 1)
  }))
  t.equal(res.statusCode, 400)
  t.equal(res.json().errors.length, 1)
  t.notOk('errorsOmitted' in res.json())
  const inBatch = await app.inject(postBatch([{
    type: 'sentiment.analyzed',
    data: { ...exampleOf('sentiment.analyzed'), keywords: Array.from({ length: 20000 }, () => 1) }
  }]))
  t.equal(inBatch.json().results[0].error.errors.length, 1)
})

t.test('errors Fastify and the docs meet themselves are problems with an EVG code', async t => {
  const { app } = await build(t)
  const badUrl = await app.inject({ method: 'GET', url: '/v1/event-types/%E0%A4%A' })
  t.equal(badUrl.statusCode, 400)
  t.match(badUrl.headers['content-type'], /^application\/problem\+json/)
  t.match(badUrl.json(), { code: 'EVG_VALIDATION', detail: /URL is not valid/ })
  const longParam = await app.inject({ method: 'GET', url: `/v1/event-types/${'a'.repeat(300)}` })
  t.match(longParam.headers['content-type'], /^application\/problem\+json/)
  t.match(longParam.json(), { status: 404, code: 'EVG_NOT_FOUND' })
  for (const url of ['/docs/static/../../package.json', '/docs/static/%2e%2e/%2e%2e/package.json', '/docs/..%2f..%2fpackage.json']) {
    const res = await app.inject({ method: 'GET', url })
    t.not(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^application\/problem\+json/, url)
    t.notMatch(res.json().title, /API key/, `${url}: not an API-key refusal`)
    t.notMatch(res.body, '"name": "event-gateway"', `${url}: no file outside the docs`)
  }
})

t.test('draining: readiness 503 at once while events are still taken', async t => {
  const { app } = await build(t)
  app.drain()
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().status, 'draining')
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
  t.equal((await app.inject('/health/live')).statusCode, 200)
})
