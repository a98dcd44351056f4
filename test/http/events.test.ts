import t from 'tap'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { BrokerError } from '../../src/brokers/broker.js'
import { OTHER_TENANT, TENANT, build, exampleOf, post } from '../helper.js'

t.test('every catalog type: its example is published and the broker gets a CloudEvents envelope', async t => {
  const { app, broker } = await build(t)
  for (const entry of BUILTIN_ENTRIES) {
    const data = exampleOf(entry.type)
    const res = await app.inject(post(entry.type, data, { 'x-user-id': 'user-9', 'x-correlation-id': `corr-${entry.type}` }))
    t.equal(res.statusCode, 202, `${entry.type} accepted`)
    const body = res.json()
    t.match(body, { type: entry.type, status: 'published', correlationId: `corr-${entry.type}` })
    t.equal(res.headers['x-correlation-id'], `corr-${entry.type}`)
    const sent = await broker.waitFor({ type: entry.type })
    t.equal(sent.envelope.id, body.id)
    t.same(JSON.parse(sent.body), sent.envelope, 'body is the serialized envelope')
    t.match(sent.envelope, {
      specversion: '1.0',
      source: 'event-gateway',
      type: entry.type,
      datacontenttype: 'application/json',
      dataschema: `urn:event-gateway:event-types:${entry.type}`,
      tenantid: TENANT,
      userid: 'user-9',
      correlationid: `corr-${entry.type}`
    })
    t.same(sent.envelope.data, data, 'data passes unchanged')
  }
  t.equal(broker.published.length, BUILTIN_ENTRIES.length)
})

t.test('routing keys come from the catalog, templates from the data', async t => {
  const { app, broker } = await build(t)
  await app.inject(post('call.ended', exampleOf('call.ended')))
  await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))
  await app.inject(post('domain.event', { ...exampleOf('domain.event'), aggregate_type: 'order', event_type: 'order_shipped' }))
  t.same(broker.published.map(e => e.routingKey), ['comms.call.ended', 'speaker.onboarded', 'domain.order.order_shipped'])
})

t.test('the survey dedupe key is the call id', async t => {
  const { app, broker } = await build(t)
  const data = exampleOf('survey.completed')
  await app.inject(post('survey.completed', data))
  t.equal(broker.published[0]?.dedupeKey, data.call_id)
})

t.test('an invalid payload is refused with every problem and its path; nothing is published', async t => {
  const { app, broker } = await build(t)
  const res = await app.inject(post('call.ended', { call_id: 7, duration: '3', outcome: 'hung_up', extra: true }))
  t.equal(res.statusCode, 400)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const p = res.json()
  t.equal(p.code, 'EVG_VALIDATION')
  const byPath = Object.fromEntries(p.errors.map((e: { path: string, message: string }) => [e.path, e.message]))
  t.match(byPath, {
    '/call_id': /string/,
    '/duration': /number/,
    '/outcome': /one of: completed, callback_requested, voicemail, failed/,
    '/transcript': /required/,
    '/extra': /not an allowed property/
  })
  t.equal(broker.calls, 0)
})

t.test('field formats and ranges from the seeds are enforced', async t => {
  const { app } = await build(t)
  const cases: [string, Record<string, unknown>, string][] = [
    ['call.started', { ...exampleOf('call.started'), from_number: '0601123456' }, '/from_number'],
    ['call.transcribed', { ...exampleOf('call.transcribed'), language: 'english!' }, '/language'],
    ['call.transcribed', { ...exampleOf('call.transcribed'), confidence: 1.2 }, '/confidence'],
    ['sentiment.analyzed', { ...exampleOf('sentiment.analyzed'), score: -1.5 }, '/score'],
    ['audit.recorded', { ...exampleOf('audit.recorded'), event_type: 'coffee_break' }, '/event_type'],
    ['notification.requested', { ...exampleOf('notification.requested'), event_type: 'spam' }, '/event_type'],
    ['survey.completed', { ...exampleOf('survey.completed'), call_id: 'not-a-uuid' }, '/call_id'],
    ['campaign.completed', { ...exampleOf('campaign.completed'), success_rate: 75 }, '/success_rate'],
    ['domain.event', { ...exampleOf('domain.event'), aggregate_type: 'Order.#' }, '/aggregate_type']
  ]
  for (const [type, data, path] of cases) {
    const res = await app.inject(post(type, data))
    t.equal(res.statusCode, 400, `${type} ${path}`)
    t.ok(res.json().errors.some((e: { path: string }) => e.path === path), `${type}: error names ${path}`)
  }
})

t.test('no type coercion: a numeric string is not a number', async t => {
  const { app } = await build(t)
  const res = await app.inject(post('campaign.completed', { ...exampleOf('campaign.completed'), total_calls: '120' }))
  t.equal(res.statusCode, 400)
})

t.test('tenant context', async t => {
  const { app, broker } = await build(t)
  const missing = await app.inject({ ...post('call.ended', exampleOf('call.ended')), headers: { 'content-type': 'application/json' } })
  t.equal(missing.statusCode, 400)
  t.equal(missing.json().code, 'EVG_BAD_CONTEXT')
  const bad = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': 'acme' }))
  t.equal(bad.json().code, 'EVG_BAD_CONTEXT')
  t.match(bad.json().detail, /UUID/)
  const badUser = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-user-id': 'a b' }))
  t.equal(badUser.json().code, 'EVG_BAD_CONTEXT')
  // the context is checked before the body: a bad tenant with a bad body is a context problem
  const both = await app.inject(post('call.ended', '{not json', { 'x-tenant-id': 'acme' }))
  t.equal(both.json().code, 'EVG_BAD_CONTEXT')
  t.equal(broker.calls, 0)

  const ok = await app.inject(post('call.ended', exampleOf('call.ended'), {
    'x-account-id': 'acct-1',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  }))
  t.equal(ok.statusCode, 202)
  const env = broker.published[0]?.envelope
  t.equal(env?.accountid, 'acct-1')
  t.equal(env?.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
  t.notOk('userid' in (env ?? {}), 'no userid attribute when unknown')

  const badTrace = await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent: 'garbage' }))
  t.equal(badTrace.statusCode, 202, 'an invalid traceparent is dropped, not refused')
  t.notOk('traceparent' in (broker.published[1]?.envelope ?? {}))
})

t.test('slug tenants and the development fallbacks', async t => {
  const { app, broker } = await build(t, {
    TENANT_ID_FORMAT: 'slug',
    ALLOW_MOCK_CONTEXT: 'true',
    MOCK_TENANT_ID: 'dev-tenant',
    MOCK_USER_ID: 'dev-user'
  })
  const res = await app.inject({ ...post('call.ended', exampleOf('call.ended')), headers: { 'content-type': 'application/json' } })
  t.equal(res.statusCode, 202)
  t.match(broker.published[0]?.envelope, { tenantid: 'dev-tenant', userid: 'dev-user' })
  const slug = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': 'acme-eu' }))
  t.equal(slug.statusCode, 202)
  t.equal(broker.published[1]?.envelope.tenantid, 'acme-eu')
})

t.test('mock fallbacks are off by default', async t => {
  const { app } = await build(t, { MOCK_TENANT_ID: TENANT })
  const res = await app.inject({ ...post('call.ended', exampleOf('call.ended')), headers: { 'content-type': 'application/json' } })
  t.equal(res.json().code, 'EVG_BAD_CONTEXT')
})

t.test('unknown and disallowed types are 404 EVG_UNKNOWN_TYPE', async t => {
  const { app } = await build(t, { EVENT_TYPES: 'call.ended, call.started' })
  const unknown = await app.inject(post('call.exploded', {}))
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'EVG_UNKNOWN_TYPE')
  const narrowed = await app.inject(post('survey.completed', exampleOf('survey.completed')))
  t.equal(narrowed.json().code, 'EVG_UNKNOWN_TYPE')
  t.equal((await app.inject(post('call.started', exampleOf('call.started')))).statusCode, 202)
  const other = await app.inject({ method: 'GET', url: '/nothing-here' })
  t.equal(other.json().code, 'EVG_NOT_FOUND')
})

t.test('Idempotency-Key: a repeat gets the first answer and publishes nothing; another body gets 409', async t => {
  const { app, broker } = await build(t)
  const data = exampleOf('call.ended')
  const first = await app.inject(post('call.ended', data, { 'idempotency-key': 'k-1' }))
  const again = await app.inject(post('call.ended', data, { 'idempotency-key': 'k-1' }))
  t.equal(again.statusCode, 202)
  t.same(again.json(), first.json())
  t.equal(again.headers['idempotency-replayed'], 'true')
  t.equal(broker.published.length, 1)
  const conflict = await app.inject(post('call.ended', { ...data, duration: 1 }, { 'idempotency-key': 'k-1' }))
  t.equal(conflict.statusCode, 409)
  t.equal(conflict.json().code, 'EVG_IDEMPOTENCY_CONFLICT')
  // keys belong to a tenant: another tenant's same key is a different request
  const other = await app.inject(post('call.ended', data, { 'idempotency-key': 'k-1', 'x-tenant-id': OTHER_TENANT }))
  t.equal(other.statusCode, 202)
  t.not(other.json().id, first.json().id)
  t.equal(broker.published.length, 2)
})

t.test('Idempotency-Key: concurrent repeats publish once', async t => {
  const { app, broker } = await build(t)
  const release = broker.hold()
  const data = exampleOf('call.ended')
  const requests = [1, 2, 3].map(() => app.inject(post('call.ended', data, { 'idempotency-key': 'same' })))
  setImmediate(release)
  const answers = await Promise.all(requests)
  t.same(new Set(answers.map(a => a.json().id)).size, 1)
  t.equal(broker.published.length, 1)
})

t.test('a failed publish is not remembered: the same key can be sent again', async t => {
  const { app, broker } = await build(t, { RETRY_MAX_ATTEMPTS: '1' })
  broker.failNext(1)
  const data = exampleOf('call.ended')
  const failed = await app.inject(post('call.ended', data, { 'idempotency-key': 'retry-me' }))
  t.equal(failed.statusCode, 503)
  const ok = await app.inject(post('call.ended', data, { 'idempotency-key': 'retry-me' }))
  t.equal(ok.statusCode, 202)
  t.equal(broker.published.length, 1)
})

t.test('a broker outage is retried; when it lasts, 503 with Retry-After', async t => {
  const { app, broker } = await build(t, { RETRY_MAX_ATTEMPTS: '3' })
  broker.failNext(2)
  const recovered = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(recovered.statusCode, 202, 'succeeds on the third attempt')
  t.equal(broker.calls, 3)

  broker.failNext(3)
  const down = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'EVG_BROKER_UNAVAILABLE')
  t.ok(Number(down.headers['retry-after']) >= 1)
  t.equal(broker.published.length, 1)
})

t.test('a refusal for good is 502 and not retried', async t => {
  const { app, broker } = await build(t)
  broker.failNext(1, new BrokerError('access denied', { retryable: false, reason: 'access_denied' }))
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 502)
  t.match(res.json(), { code: 'EVG_BROKER_REJECTED', reason: 'access_denied' })
  t.equal(broker.calls, 1)
})

t.test('a broker that never answers is cut off at PUBLISH_TIMEOUT_MS', async t => {
  const { app, broker } = await build(t, { PUBLISH_TIMEOUT_MS: '150' })
  const release = broker.hold()
  t.teardown(release)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 503)
  t.equal(res.json().reason, 'timeout')
})
