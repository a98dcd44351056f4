import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { TENANT, build, dataDir, exampleOf, post } from '../helper.js'

const batch = (events: unknown[], headers: Record<string, string> = {}) => ({
  method: 'POST' as const,
  url: '/v1/events',
  headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, ...headers },
  payload: JSON.stringify({ events })
})

t.test('a number too large to represent is refused before validation, not stored as null', async t => {
  const { app, broker } = await build(t)
  const body = JSON.stringify(exampleOf('call.ended')).replace('"duration":180', '"duration":1e400')
  const res = await app.inject(post('call.ended', body))
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'EVG_VALIDATION', detail: /too large/ })
  const digits = await app.inject(post('campaign.completed', JSON.stringify(exampleOf('campaign.completed')).replace('"total_calls":120', `"total_calls":${'9'.repeat(400)}`)))
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
    schema: { type: 'object', additionalProperties: false, required: ['region'], properties: { region: { type: 'string', maxLength: 1000 } }, examples: [{ region: 'eu' }] }
  }))
  const { app, broker } = await build(t, { EVENT_CATALOG_DIR: dir })
  const fits = await app.inject(post('order.placed', { region: 'r'.repeat(244) }))
  t.equal(fits.statusCode, 202, '255 bytes fit')
  const single = await app.inject(post('order.placed', { region: 'r'.repeat(245) }))
  t.equal(single.statusCode, 400)
  t.match(single.json(), { code: 'EVG_VALIDATION', errors: [{ path: '/region', message: /longer than 255 bytes/ }] })
  const inBatch = await app.inject(batch([{ type: 'order.placed', data: { region: 'r'.repeat(300) } }]))
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
  const many = await app.inject(batch(Array.from({ length: 100 }, () => ({ type: 'sentiment.analyzed', data }))))
  t.equal(many.statusCode, 400)
  t.ok(many.body.length < 250000, `the answer stays small: ${many.body.length} bytes`)
  t.equal(broker.calls, 0)
})
