import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BrokerError } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { ConfigError } from '../../src/errors.js'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { decryptValue } from '../../src/protection/values.js'
import { fingerprint } from '../../src/state/idempotency.js'
import { createAjv } from '../../src/validation/index.js'
import { build, dataDir, exampleOf, OTHER_TENANT, post, TENANT } from '../helper.js'

// Fields protected per destination, through the HTTP API; each destination a memory broker.
const SECRET = Buffer.alloc(32, 9).toString('base64')
const TRANSCRIPT = 'Customer wants a callback tomorrow at 2pm, call me on 555-0134.'

const routesFile = {
  destinations: {
    analytics: {
      broker: 'rabbitmq',
      exchange: 'analytics.events',
      envelope: 'ocelot',
      protect: { 'call.ended': { '/transcript': 'encrypt' }, 'call.transcribed': { '/transcript': 'drop' } }
    },
    warehouse: {
      broker: 'rabbitmq',
      exchange: 'warehouse.events',
      protect: { 'call.ended': { '/transcript': 'hash' }, 'call.transcribed': { '/transcript': 'hash' } }
    },
    trusted: { broker: 'rabbitmq', exchange: 'trusted.events' }
  },
  routes: [{ types: ['call.*'], to: ['analytics', 'warehouse', 'trusted'] }, { types: ['*'], to: ['trusted'] }]
}

function files (t: Test, routes: unknown, keys: unknown = { active: 'k1', keys: [{ id: 'k1', secret: '${TEST_PROTECTION_SECRET}' }] }) {
  const dir = dataDir(t)
  const env: Record<string, string> = { ROUTES_FILE: join(dir, 'routes.json'), PROTECTION_KEYS_FILE: join(dir, 'keys.json') }
  writeFileSync(env.ROUTES_FILE as string, JSON.stringify(routes))
  writeFileSync(env.PROTECTION_KEYS_FILE as string, JSON.stringify(keys))
  return env
}

async function gateway (t: Test, env: Record<string, string> = {}) {
  process.env.TEST_PROTECTION_SECRET = SECRET
  const brokers = new Map<string, MemoryBroker>()
  const built = await build(t, { ...files(t, routesFile), RETRY_MAX_ATTEMPTS: '1', ...env }, {
    brokers: d => {
      const broker = new MemoryBroker()
      brokers.set(d.name, broker)
      return broker
    }
  })
  const get = (name: string) => brokers.get(name) as MemoryBroker
  const keys = ProtectionKeys.load(built.config.PROTECTION_KEYS_FILE as string, createAjv(), process.env)
  return { ...built, analytics: get('analytics'), warehouse: get('warehouse'), trusted: get('trusted'), keys }
}

t.test('one destination gets the transcript encrypted, one hashed, the trusted one in clear', async t => {
  const { app, analytics, warehouse, trusted, keys } = await gateway(t)
  const data: Record<string, unknown> = { ...exampleOf('call.ended'), transcript: TRANSCRIPT }
  const res = await app.inject(post('call.ended', data))
  t.equal(res.statusCode, 202)
  const encrypted = analytics.published[0]?.envelope.data.transcript
  t.match(encrypted, /^evg:v1:k1:[A-Za-z0-9_-]+$/)
  t.equal(decryptValue(keys, { tenant: TENANT, type: 'call.ended', pointer: '/transcript' }, encrypted), TRANSCRIPT)
  t.equal(analytics.published[0]?.envelope.data.outcome, data.outcome, 'the other fields as sent')
  t.notMatch(analytics.published[0]?.body, '555-0134', 'nothing of the value in the body')
  t.notMatch(JSON.stringify(analytics.published[0]?.event), '555-0134', 'nor in what the broker (or an outbox) keeps of the event')
  t.match(warehouse.published[0]?.envelope.data.transcript, /^[0-9a-f]{64}$/)
  t.equal(trusted.published[0]?.envelope.data.transcript, TRANSCRIPT, 'the trusted destination gets it in clear')
  // What each one's data conforms to: the type's schema, or the destination's protected one.
  t.equal(trusted.published[0]?.envelope.dataschema, 'urn:event-gateway:event-types:call.ended')
  t.equal(warehouse.published[0]?.envelope.dataschema, 'urn:event-gateway:destinations:warehouse:event-types:call.ended')
  t.equal(trusted.published[0]?.envelope.id, analytics.published[0]?.envelope.id, 'the same event everywhere')
  // Hashing: equal within a tenant, different across tenants.
  await app.inject(post('call.ended', data))
  await app.inject(post('call.ended', data, { 'x-tenant-id': OTHER_TENANT }))
  const hashes = warehouse.published.map(p => p.envelope.data.transcript)
  t.equal(hashes[1], hashes[0], 'the same value hashes the same for one tenant')
  t.not(hashes[2], hashes[0], 'and differently for another')
  t.not(analytics.published[1]?.envelope.data.transcript, encrypted, 'each encryption has its own IV')
  // drop
  const chunk = await app.inject(post('call.transcribed', exampleOf('call.transcribed')))
  t.equal(chunk.statusCode, 202)
  t.notOk('transcript' in (analytics.published[3]?.envelope.data ?? {}), 'dropped: the field is gone')
  t.equal(analytics.published[3]?.envelope.data.language, 'en-US')
  // A null transcript says "none": it stays null.
  await app.inject(post('call.ended', { ...data, transcript: null }))
  t.equal(analytics.published[4]?.envelope.data.transcript, null)
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, 'gateway_protected_values_total{destination="analytics",action="encrypt"} 3')
  t.match(metrics, 'gateway_protected_values_total{destination="analytics",action="drop"} 1')
  t.match(metrics, 'gateway_protected_values_total{destination="warehouse",action="hash"} 4')
  t.notMatch(metrics, 'gateway_protected_values_total{destination="trusted"', 'nothing for a destination that protects nothing')
})

t.test('validation runs on the raw payload: a bad value is a 400 naming the field, nothing is sent', async t => {
  const { app, analytics, trusted } = await gateway(t)
  const res = await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: 42 }))
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'EVG_VALIDATION', errors: [{ path: '/transcript' }] })
  t.equal(analytics.published.length + trusted.published.length, 0)
})

t.test('a partial fan-out kept for its idempotency key holds no data; the repeat completes it, protected', async t => {
  const { app, analytics, trusted, config, keys } = await gateway(t)
  analytics.failNext(1, new BrokerError('connection lost', { retryable: true, reason: 'connection_lost' }))
  const data = { ...exampleOf('call.ended'), transcript: TRANSCRIPT }
  const request = post('call.ended', data, { 'idempotency-key': 'k-protect-1' })
  t.equal((await app.inject(request)).statusCode, 503)
  t.equal(trusted.published.length, 1)
  const repeat = await app.inject(request)
  t.equal(repeat.statusCode, 202)
  t.equal(analytics.published.length, 1)
  t.match(analytics.published[0]?.envelope.data.transcript, /^evg:v1:/)
  t.equal(analytics.published[0]?.envelope.id, trusted.published[0]?.envelope.id, 'the same event id, completed')
  t.equal(trusted.published.length, 1, 'not sent again where it was')
  // Closed: the embedded state store has written what it keeps (SQLite, its WAL) under DATA_DIR.
  await app.close()
  const stored = readdirSync(config.DATA_DIR, { recursive: true, encoding: 'utf8' })
    .map(f => { try { return readFileSync(join(config.DATA_DIR, f)).toString('latin1') } catch { return '' } }).join('\n')
  t.notMatch(stored, '555-0134', 'no file under DATA_DIR holds the value')
  // Nor a plain hash of the data, which a guess of the transcript could be checked against.
  t.notMatch(stored, fingerprint('call.ended', data), 'the fingerprint is not a plain SHA-256 of the data')
  const keyed = fingerprint('call.ended', data, keys.key(TENANT, 'fingerprint', keys.first))
  t.match(stored, keyed, 'but an HMAC with the tenant\'s own key')
})

t.test('the AsyncAPI document shows the protected fields as strings, and its examples protected', async t => {
  const { app } = await gateway(t)
  const doc = (await app.inject('/asyncapi.json')).json()
  const schemas = doc.components.schemas
  const encrypted = schemas['analytics.call.ended.data'].properties.transcript
  t.match(encrypted, { anyOf: [{ type: 'string', pattern: '^evg:v1:' }, { type: 'null' }] })
  t.match(schemas['warehouse.call.ended.data'].properties.transcript, { anyOf: [{ type: 'string', pattern: '^[0-9a-f]{64}$' }] })
  t.notOk('transcript' in schemas['analytics.call.transcribed.data'].properties, 'dropped')
  t.notOk(schemas['analytics.call.transcribed.data'].required.includes('transcript'))
  const clear = schemas['call.ended'].properties.transcript
  t.match(clear, { anyOf: [{ type: 'string', maxLength: 200000 }] }, 'the clear schema for the others')
  const example = doc.components.messages['analytics.call.ended'].examples[0].payload
  t.match(example.data.transcript, /^evg:v1:k1:/)
  const metrics = (await app.inject('/metrics')).body
  t.notMatch(metrics, /gateway_protected_values_total\{[^}]*\} [1-9]/, 'documents are not counted as protected values')
})

t.test('a wrong protect rule stops the start, naming the file, destination, type and pointer', async t => {
  const at = (pattern: string, pointer: string, type: string) => `destinations.d.protect.${pattern}.${pointer} (${type}): `
  const cases: [unknown, string][] = [
    [{ 'call.ended': { '/nope': 'hash' } }, `${at('call.ended', '/nope', 'call.ended')}is not a field of call.ended`],
    [{ 'call.*': { '/transcript': 'hash' } }, `${at('call.*', '/transcript', 'call.started')}is not a field of call.started`],
    [
      { 'campaign.completed': { '/campaign_id': 'hash' } },
      `${at('campaign.completed', '/campaign_id', 'campaign.completed')}is the field the catalog makes the event's dedupe key of`
    ],
    [
      { 'call.ended': { '/transcript': 'hash', '/transcript/x': 'drop' } },
      `${at('call.ended', '/transcript/x', 'call.ended')}is inside /transcript`
    ],
    [
      { 'call.ended': { '/transcript': 'hash' }, '*': { '/transcript': 'drop' } },
      `${at('*', '/transcript', 'call.ended')}drop, where destinations.d.protect.call.ended says hash`
    ],
    [
      { 'call.ended': { transcript: 'hash' } },
      `${at('call.ended', 'transcript', 'call.ended')}must be a JSON Pointer to a field of the data`
    ],
    [{ 'call.ended': { '/transcript': 'blur' } }, 'destinations.d.protect.call.ended./transcript: must be one of: drop, hash, encrypt'],
    [{ 'call.endd': { '/transcript': 'hash' } }, 'destinations.d.protect.call.endd: matches no type routed to d']
  ]
  const only = (protect: unknown) => ({ destinations: { d: { broker: 'local', protect } }, routes: [{ types: ['*'], to: ['d'] }] })
  for (const [protect, message] of cases) {
    const env = files(t, only(protect))
    process.env.TEST_PROTECTION_SECRET = SECRET
    const error = await t.rejects(build(t, env), ConfigError) as unknown
    t.match(String(error), /ROUTES_FILE: \S+routes\.json/)
    t.match(String(error), message, JSON.stringify(protect))
  }
  // hash and encrypt need the keys file.
  const routes = only({ 'call.ended': { '/transcript': 'encrypt' } })
  const { PROTECTION_KEYS_FILE: _keys, ...env } = files(t, routes)
  await t.rejects(build(t, env), /\/transcript \(call\.ended\): encrypt needs PROTECTION_KEYS_FILE, which is not set/)
  // drop alone does not.
  const drop = only({ 'call.ended': { '/transcript': 'drop' } })
  const { PROTECTION_KEYS_FILE: _none, ...dropEnv } = files(t, drop)
  const { app } = await build(t, dropEnv)
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
})

t.test('message fields the destination declares are made from the protected event', async t => {
  const routes = {
    destinations: {
      d: {
        broker: 'rabbitmq',
        exchange: 'd.events',
        protect: { 'call.ended': { '/transcript': 'hash' } },
        message: { headers: { 'x-transcript': '{{data.transcript ?? null}}' } }
      },
      rest: { broker: 'local' }
    },
    routes: [{ types: ['call.ended'], to: ['d'] }, { types: ['*'], to: ['rest'] }]
  }
  process.env.TEST_PROTECTION_SECRET = SECRET
  const broker = new MemoryBroker()
  const { app } = await build(t, files(t, routes), { brokers: () => broker })
  t.equal((await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: TRANSCRIPT }))).statusCode, 202)
  const [sent] = broker.published
  t.match(sent?.message?.headers?.['x-transcript'], /^[0-9a-f]{64}$/)
  t.equal(sent?.message?.headers?.['x-transcript'], sent?.envelope.data.transcript, 'the header is the value the envelope carries')
})
