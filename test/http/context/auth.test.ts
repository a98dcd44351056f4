import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { OTHER_TENANT, TENANT, build, exampleOf, post } from '../../helper.js'

const sha = (key: string) => createHash('sha256').update(key).digest('hex')
const keysFile = {
  keys: [
    { name: 'comms-service', sha256: sha('comms-key'), tenants: [TENANT], eventTypes: ['call.*', 'campaign.completed'] },
    { name: 'platform', sha256: sha('admin-key'), tenants: ['*'], eventTypes: ['*'] }
  ]
}

t.test('with API_KEYS_FILE every publish needs a key allowed for its tenant and type', async t => {
  const dir = t.testdir({ 'keys.json': JSON.stringify(keysFile) })
  const { app, broker } = await build(t, { API_KEYS_FILE: join(dir, 'keys.json') })
  const data = exampleOf('call.ended')

  const none = await app.inject(post('call.ended', data))
  t.equal(none.statusCode, 401)
  t.equal(none.json().code, 'EVG_UNAUTHORIZED')
  t.equal(none.headers['www-authenticate'], 'Bearer')
  t.equal((await app.inject(post('call.ended', data, { authorization: 'Bearer wrong' }))).json().code, 'EVG_UNAUTHORIZED')
  t.equal((await app.inject(post('call.ended', data, { authorization: 'Basic abc' }))).json().code, 'EVG_UNAUTHORIZED')

  t.equal((await app.inject(post('call.ended', data, { authorization: 'Bearer comms-key' }))).statusCode, 202)
  const otherTenant = await app.inject(post('call.ended', data, { authorization: 'Bearer comms-key', 'x-tenant-id': OTHER_TENANT }))
  t.equal(otherTenant.statusCode, 403)
  t.equal(otherTenant.json().code, 'EVG_FORBIDDEN')
  const otherType = await app.inject(post('survey.completed', exampleOf('survey.completed'), { authorization: 'Bearer comms-key' }))
  t.equal(otherType.json().code, 'EVG_FORBIDDEN')
  t.equal(
    (await app.inject(post(
      'survey.completed',
      exampleOf('survey.completed'),
      { authorization: 'Bearer admin-key', 'x-tenant-id': OTHER_TENANT }
    ))).statusCode,
    202
  )

  const batch = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, authorization: 'Bearer comms-key' },
    payload: JSON.stringify({ events: [{ type: 'call.ended', data }, { type: 'speaker.onboarded', data: exampleOf('speaker.onboarded') }] })
  })
  t.equal(batch.statusCode, 207)
  t.equal(batch.json().results[1].error.code, 'EVG_FORBIDDEN')

  const readOther = await app.inject({
    method: 'GET',
    url: '/v1/events',
    headers: { 'x-tenant-id': OTHER_TENANT, authorization: 'Bearer comms-key' }
  })
  t.equal(readOther.statusCode, 403, 'a key cannot read another tenant\'s events')
  t.equal(broker.published.length, 3)
  t.equal((await app.inject('/health/live')).statusCode, 200, 'health needs no key')
})

t.test('a bad API_KEYS_FILE stops the start with a clear message', async t => {
  const dir = t.testdir({ 'keys.json': JSON.stringify({ keys: [{ name: 'x', sha256: 'not-hex', tenants: ['*'], eventTypes: ['*'] }] }) })
  await t.rejects(
    build(t, { API_KEYS_FILE: join(dir, 'keys.json') }),
    { name: 'ConfigError', message: /API_KEYS_FILE: .*keys\.json is not valid: \/keys\/0\/sha256/ }
  )
  await t.rejects(build(t, { API_KEYS_FILE: join(dir, 'missing.json') }), { message: /API_KEYS_FILE: cannot read .*ENOENT/ })
  // `admin` (the admin API of spool mode) is a boolean, and optional
  const admin = t.testdir({
    'keys.json': JSON.stringify({ keys: [{ name: 'ops', sha256: sha('ops-key'), tenants: ['*'], eventTypes: ['*'], admin: 'yes' }] })
  })
  await t.rejects(
    build(t, { API_KEYS_FILE: join(admin, 'keys.json') }),
    { name: 'ConfigError', message: /API_KEYS_FILE: .*keys\.json is not valid: \/keys\/0\/admin/ }
  )
})
