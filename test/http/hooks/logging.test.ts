import t from 'tap'
import { LogCapture, TENANT, build, exampleOf, post } from '../../helper.js'

t.test('logs carry request, correlation, tenant and event ids, never payloads or credentials', async t => {
  const logs = new LogCapture()
  const { app } = await build(t, { LOG_LEVEL: 'trace' }, { logStream: logs })
  const secret = 'SECRET-TRANSCRIPT-4711'
  const batchData = { ...exampleOf('batch.processing.completed'), raw_transcript: secret, cleaned_transcript: secret }
  const res = await app.inject(post('batch.processing.completed', batchData, {
    authorization: 'Bearer sk-live-123456',
    'x-correlation-id': 'corr-log'
  }))
  t.equal(res.statusCode, 202)
  await app.inject(post(
    'call.ended',
    { ...exampleOf('call.ended'), transcript: secret, duration: -1 },
    { authorization: 'Bearer sk-live-123456' }
  ))
  await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: JSON.stringify({ events: [{ type: 'call.ended', data: { transcript: secret } }] })
  })

  t.notMatch(logs.text, secret, 'no transcript in any log line')
  t.notMatch(logs.text, 'sk-live-123456', 'no API key in any log line')
  // one access line per request, with every id
  const published = logs.records.find(r => r.eventId === res.json().id)
  t.match(published, {
    msg: 'request completed',
    statusCode: 202,
    correlationId: 'corr-log',
    tenantId: TENANT,
    type: 'batch.processing.completed',
    reqId: String,
    responseTime: Number
  })
  const refused = logs.records.filter(r => r.code === 'EVG_VALIDATION')
  t.equal(refused.length, 2, 'both refused requests are logged with their code')
  t.match(refused[0], { msg: 'request completed', statusCode: 400, tenantId: TENANT })
  t.match(logs.records.find(r => r.events === 1), { accepted: 0, statusCode: 400 })
})

t.test('X-Request-ID: a caller\'s is used and echoed; an unusable one is replaced; refused requests log their type', async t => {
  const logs = new LogCapture()
  const { app } = await build(t, { LOG_LEVEL: 'info' }, { logStream: logs })
  const given = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-request-id': 'req-from-caller-1' }))
  t.equal(given.headers['x-request-id'], 'req-from-caller-1')
  t.match(logs.records.find(r => r.reqId === 'req-from-caller-1'), { msg: 'request completed', statusCode: 202, type: 'call.ended' })
  const odd = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-request-id': 'x'.repeat(300) }))
  t.match(odd.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'too long: a new one')
  const refused = await app.inject(post('call.ended', { bad: true }, { 'x-request-id': 'req-refused' }))
  t.equal(refused.statusCode, 400)
  t.equal(refused.headers['x-request-id'], 'req-refused')
  t.match(logs.records.find(r => r.reqId === 'req-refused'), { statusCode: 400, code: 'EVG_VALIDATION', type: 'call.ended' })
  const noTenant = await app.inject({
    ...post('call.ended', exampleOf('call.ended')),
    headers: { 'content-type': 'application/json', 'x-request-id': 'req-no-tenant' }
  })
  t.equal(noTenant.statusCode, 400)
  t.match(logs.records.find(r => r.reqId === 'req-no-tenant'), { code: 'EVG_BAD_CONTEXT', type: 'call.ended' })
})
