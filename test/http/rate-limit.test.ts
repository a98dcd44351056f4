import { join } from 'node:path'
import t from 'tap'
import { OTHER_TENANT, TENANT, build, exampleOf, post, postBatch } from '../helper.js'

const call = () => post('call.ended', exampleOf('call.ended'))

t.test('a tenant over RATE_LIMIT_PER_TENANT gets 429 EVG_RATE_LIMITED with Retry-After and RateLimit-*; other tenants do not', async t => {
  const { app, broker } = await build(t, { RATE_LIMIT_PER_TENANT: '1', RATE_LIMIT_BURST: '3' })
  const taken = []
  for (let i = 0; i < 3; i++) taken.push(await app.inject(call()))
  t.same(taken.map(r => r.statusCode), [202, 202, 202])
  t.same(taken.map(r => r.headers['ratelimit-limit']), ['3', '3', '3'])
  t.same(taken.map(r => r.headers['ratelimit-remaining']), ['2', '1', '0'])
  const refused = await app.inject(call())
  t.equal(refused.statusCode, 429)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  t.match(refused.json(), { code: 'EVG_RATE_LIMITED', status: 429, detail: /1 events per second \(3 at once\)/ })
  t.equal(refused.headers['retry-after'], '1')
  t.equal(refused.headers['ratelimit-remaining'], '0')
  t.equal(broker.published.length, 3, 'the refused event was not published')

  t.equal(
    (await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': OTHER_TENANT }))).statusCode,
    202,
    'another tenant has its own bucket'
  )
  for (const url of ['/health/live', '/health/ready', '/metrics', '/docs/json', '/v1/event-types']) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, `${url} is never limited`)
    t.notOk(res.headers['ratelimit-limit'], `${url} carries no rate-limit headers`)
  }
  const readBack = await app.inject({ method: 'GET', url: '/v1/events', headers: { 'x-tenant-id': TENANT } })
  t.not(readBack.statusCode, 429, 'reading back is not publishing')
  t.match((await app.inject('/metrics')).body, /gateway_rate_limited_events_total 1\b/)
  t.match((await app.inject('/metrics')).body, /gateway_events_rejected_total\{type="call.ended",code="EVG_RATE_LIMITED"\} 1/)

  // the bucket refills at the rate
  await new Promise(resolve => setTimeout(resolve, 1100))
  t.equal((await app.inject(call())).statusCode, 202)
})

t.test('a batch counts its events', async t => {
  const { app, broker } = await build(t, { RATE_LIMIT_PER_TENANT: '0.5', RATE_LIMIT_BURST: '5' })
  const events = (n: number) => Array.from({ length: n }, () => ({ type: 'call.ended', data: exampleOf('call.ended') }))
  const first = await app.inject(postBatch(events(3)))
  t.equal(first.statusCode, 202)
  t.equal(first.headers['ratelimit-remaining'], '2')
  const over = await app.inject(postBatch(events(3)))
  t.equal(over.statusCode, 429, 'three more events do not fit in the two left')
  t.ok(Number(over.headers['retry-after']) >= 2, 'Retry-After is when three would fit')
  t.equal(broker.published.length, 3)
  t.match((await app.inject('/metrics')).body, /gateway_rate_limited_events_total 3\b/)
  t.equal((await app.inject(postBatch(events(2)))).statusCode, 202, 'two still fit')
})

t.test('a batch larger than the burst is taken from a full bucket, which then owes it: the rate holds', async t => {
  const { app, broker } = await build(t, { RATE_LIMIT_PER_TENANT: '2', RATE_LIMIT_BURST: '3', BATCH_MAX_EVENTS: '1000' })
  const big = await app.inject(postBatch(Array.from({ length: 10 }, () => ({ type: 'call.ended', data: exampleOf('call.ended') }))))
  t.equal(big.statusCode, 202)
  t.equal(big.headers['ratelimit-remaining'], '0')
  const next = await app.inject(call())
  t.equal(next.statusCode, 429)
  const wait = Number(next.headers['retry-after'])
  t.ok(wait >= 3 && wait <= 4, `Retry-After ${wait}: ten events at two per second, less the burst of three, then one`)
  t.equal((await app.inject(postBatch([{ type: 'call.ended', data: exampleOf('call.ended') }]))).statusCode, 429, 'another batch waits too')
  t.equal(broker.published.length, 10)
})

t.test('RATE_LIMITS_FILE: per-tenant limits override the default; a bad file stops the start', async t => {
  const dir = t.testdir({
    'limits.json': JSON.stringify({ tenants: { [TENANT.toUpperCase()]: { perSecond: 0 }, [OTHER_TENANT]: { perSecond: 1, burst: 1 } } }),
    'bad.json': JSON.stringify({ tenants: { x: { perSecond: -1 } } }),
    'unmatchable.json': JSON.stringify({ tenants: { 'not a tenant!': { perSecond: 1 }, [OTHER_TENANT]: { perSecond: 0.00001 } } })
  })
  const { app } = await build(t, { RATE_LIMIT_PER_TENANT: '1', RATE_LIMIT_BURST: '1', RATE_LIMITS_FILE: join(dir, 'limits.json') })
  for (let i = 0; i < 5; i++) t.equal((await app.inject(call())).statusCode, 202, 'perSecond 0: no limit for this tenant')
  const other = (await Promise.all(
    [1, 2].map(() => app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': OTHER_TENANT })))
  )).map(r => r.statusCode).sort()
  t.same(other, [202, 429])
  const third = '11111111-2222-4333-8444-555555555555'
  t.same(
    (await Promise.all(
      [1, 2].map(() => app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': third })))
    )).map(r => r.statusCode).sort(),
    [202, 429],
    'the default applies to the others'
  )
  await t.rejects(
    build(t, { RATE_LIMITS_FILE: join(dir, 'bad.json') }),
    { name: 'ConfigError', message: /RATE_LIMITS_FILE: .*bad\.json is not valid: \/tenants\/x\/perSecond/ }
  )
  await t.rejects(
    build(t, { RATE_LIMITS_FILE: join(dir, 'missing.json') }),
    { name: 'ConfigError', message: /RATE_LIMITS_FILE: cannot read .*ENOENT/ }
  )
  await t.rejects(build(t, { RATE_LIMITS_FILE: join(dir, 'unmatchable.json') }), {
    name: 'ConfigError',
    message: new RegExp(
      /\/tenants\/not a tenant! is not a tenant id \(TENANT_ID_FORMAT=uuid\); /.source +
      /\/tenants\/9b2d[^/]+\/perSecond must be 0 \(no limit\) or at least 0.001/.source
    )
  })
})

t.test('without a limit nothing is counted and no rate-limit header is sent', async t => {
  const { app } = await build(t)
  const res = await app.inject(call())
  t.equal(res.statusCode, 202)
  t.notOk(res.headers['ratelimit-limit'])
})
