import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import amqplib from 'amqplib'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { decryptValue } from '../../src/protection/values.js'
import { LogCapture, OTHER_TENANT, TENANT, dataDir, exampleOf, post, testConfig } from '../helper.js'
import { serviceSkip } from '../services.js'
import { ConsumerProcess, PYTHON, type Line } from './consumer-process.js'
import { AMQP_URL, Consumer, cleanupExchange, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

// Field protection end to end: a gateway in front of the real RabbitMQ and the embedded local
// store, and consumers written as the seeds write theirs (Python, pika) that open what they get
// with the recipe docs/protection.md gives them: the doc's ```python block, taken as it is at test
// time, so that a wrong recipe (or a gateway that does not write what the doc says) fails here.

const rabbit = await rabbitSkip()
const python = await serviceSkip('Python', {
  at: `${PYTHON} with pika and cryptography`,
  probe: async () => {
    const probe = spawnSync(PYTHON, ['-c', 'import pika, cryptography'], { encoding: 'utf8' })
    if (probe.status !== 0) throw new Error((probe.stderr || String(probe.error ?? '')).trim().split('\n').at(-1) ?? '')
  },
  hint: 'install them with apt-get install python3-pika python3-cryptography'
})
const skip = rabbit !== false ? rabbit : python
if (skip === false) await takeRabbitMqTurn(t)

const root = new URL('../../', import.meta.url).pathname
const CONSUMER = join(root, 'test/integration/protection-consumer.py')
const K1 = Buffer.alloc(32, 1).toString('base64')
const K2 = Buffer.alloc(32, 2).toString('base64')
const TRANSCRIPT = 'Customer asked for a callback at 2pm on 555-0134, about the invoice.'
const MARKER = 'callback at 2pm on 555-0134'
const CONTACT = '5d3c2b1a-0f9e-4d8c-a7b6-e5f4d3c2b1a0'
const INVALID_TAG = { error: 'cryptography.exceptions.InvalidTag' }
/** Where the secrets the keys file refers to come from: the gateway's environment (a secret manager's variables). */
const ENV = { ...process.env, EVG_TEST_PROTECTION_K1: K1 }

/** The doc's recipe as it is: the first ```python block of docs/protection.md, as a module the consumers import. */
function recipe (t: Test): string {
  const doc = readFileSync(join(root, 'docs/protection.md'), 'utf8')
  const block = /^```python\n([\s\S]*?)^```$/m.exec(doc)?.[1]
  if (block === undefined) throw new Error('docs/protection.md has no ```python block')
  const path = join(dataDir(t), 'evg_protection_recipe.py')
  writeFileSync(path, block)
  return path
}

interface Exchanges { analytics: string, trusted: string }

function exchanges (t: Test): Exchanges {
  const names = { analytics: uniqueName('analytics.events'), trusted: uniqueName('trusted.events') }
  cleanupExchange(t, names.analytics)
  cleanupExchange(t, names.trusted)
  return names
}

/**
 * The routes file: analytics gets the transcript encrypted (transcript chunks without it) and the
 * contact hashed, trusted gets everything in clear, the store keeps the transcript hashed (and a
 * chunk's encrypted). The consumers declare their
 * exchanges themselves, plain, as the seeds do: no alternate exchange.
 */
function routesFile (x: Exchanges) {
  return {
    destinations: {
      analytics: {
        broker: 'rabbitmq',
        exchange: x.analytics,
        alternateExchange: '',
        protect: {
          'call.ended': { '/transcript': 'encrypt' },
          'call.transcribed': { '/transcript': 'drop' },
          'survey.completed': { '/contact_id': 'hash' }
        }
      },
      trusted: { broker: 'rabbitmq', exchange: x.trusted, alternateExchange: '' },
      store: { broker: 'local', protect: { 'call.ended': { '/transcript': 'hash' }, 'call.transcribed': { '/transcript': 'encrypt' } } }
    },
    routes: [
      { types: ['call.*', 'survey.completed'], to: ['analytics', 'trusted', 'store'] },
      { types: ['*'], to: ['trusted'] }
    ]
  }
}

const KEYS_K1 = { active: 'k1', keys: [{ id: 'k1', secret: '${EVG_TEST_PROTECTION_K1}' }] }
const KEYS_K2 = { active: 'k2', keys: [{ id: 'k1', secret: '${EVG_TEST_PROTECTION_K1}' }, { id: 'k2', secret: K2 }] }

async function gateway (t: Test, x: Exchanges, keys: object, dir: string = dataDir(t)) {
  const files = dataDir(t)
  const ROUTES_FILE = join(files, 'routes.json')
  const PROTECTION_KEYS_FILE = join(files, 'keys.json')
  writeFileSync(ROUTES_FILE, JSON.stringify(routesFile(x)))
  writeFileSync(PROTECTION_KEYS_FILE, JSON.stringify(keys))
  const config = testConfig(t, { DATA_DIR: dir, ROUTES_FILE, PROTECTION_KEYS_FILE, AMQP_URL, PUBLISH_TIMEOUT_MS: '5000' })
  const app = await buildApp(config, { env: ENV, logStream: new LogCapture() })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await app.close()
  }
  t.teardown(close)
  await app.ready()
  return { app, close, dir }
}

type App = Awaited<ReturnType<typeof gateway>>['app']

/** Durable queues of the consumers, deleted when the test ends. */
function queues (t: Test, ...names: string[]): string[] {
  t.teardown(async () => {
    const conn = await amqplib.connect(AMQP_URL)
    const ch = await conn.createChannel()
    for (const q of names) await ch.deleteQueue(q).catch(() => undefined)
    await conn.close().catch(() => undefined)
  })
  return names
}

function consumer (t: Test, name: string, exchange: string, queue: string, secrets: Record<string, string>, recipePath: string) {
  return new ConsumerProcess(t, name, PYTHON, [CONSUMER], {
    RABBITMQ_URL: `${AMQP_URL}/`,
    EXCHANGE: exchange,
    QUEUE: queue,
    CONSUMER: name,
    RECIPE: recipePath,
    PROTECTION_SECRETS: JSON.stringify(secrets),
    KNOWN_VALUES: JSON.stringify([TRANSCRIPT, CONTACT]),
    PROBE_TENANTS: JSON.stringify([TENANT, OTHER_TENANT])
  })
}

async function send (t: Test, app: App, type: string, data: Record<string, unknown>, tenant = TENANT): Promise<string> {
  const res = await app.inject(post(type, data, { 'x-tenant-id': tenant }))
  t.equal(res.statusCode, 202, `${type} for ${tenant} accepted`)
  return res.json().id as string
}

const callEnded = (): Record<string, unknown> => ({ ...exampleOf('call.ended'), transcript: TRANSCRIPT })
/** A survey outcome of CONTACT, each for a call of its own. */
const surveyCompleted = (): Record<string, unknown> => ({ ...exampleOf('survey.completed'), contact_id: CONTACT, call_id: randomUUID() })
/** What the consumer's recipe made of one of its known values: hashed(value, secret of `key`, the event's tenant). */
const hashOf = (l: Line, key: string, value: string) => (l.hashes as Record<string, Record<string, string>>)[key]?.[value]
const field = (l: Line, name: string) => (l.data as Record<string, unknown>)[name]

/** The local store's read-back for a tenant: its events of a type as it stored them. */
async function readBack (app: App, type: string, tenant = TENANT) {
  const res = await app.inject({ method: 'GET', url: `/v1/events?type=${type}&limit=1000`, headers: { 'x-tenant-id': tenant } })
  return { status: res.statusCode, body: res.body, events: (res.json().events ?? []) as { id: string, data: Record<string, unknown> }[] }
}

const EVG = /^evg:v1:k1:[A-Za-z0-9_-]+$/
const HEX = /^[0-9a-f]{64}$/

t.test('analytics opens the encrypted transcript and joins the hashed contact with the doc\'s Python recipe', { skip }, async t => {
  const x = exchanges(t)
  const { app, dir } = await gateway(t, x, KEYS_K1)
  const recipePath = recipe(t)
  const [analyticsQueue, trustedQueue] = queues(t, uniqueName('analytics'), uniqueName('trusted')) as [string, string]
  const analytics = consumer(t, 'analytics', x.analytics, analyticsQueue, { k1: K1 }, recipePath)
  const trusted = consumer(t, 'trusted', x.trusted, trustedQueue, { k1: K1 }, recipePath)
  for (const c of [analytics, trusted]) await c.waitFor(l => 'ready' in l, 'ready line')

  const call1 = await send(t, app, 'call.ended', callEnded())
  const call2 = await send(t, app, 'call.ended', callEnded())
  const callOther = await send(t, app, 'call.ended', callEnded(), OTHER_TENANT)
  const survey1 = await send(t, app, 'survey.completed', surveyCompleted())
  const survey2 = await send(t, app, 'survey.completed', surveyCompleted())
  const surveyOther = await send(t, app, 'survey.completed', surveyCompleted(), OTHER_TENANT)
  const chunk = await send(t, app, 'call.transcribed', { ...exampleOf('call.transcribed'), transcript: TRANSCRIPT })
  const got = async (c: ConsumerProcess, id: string) => await c.waitFor(l => l.id === id, `event ${id}`)

  await t.test('the transcript: encrypted, and the recipe opens it with the event\'s tenant, type and pointer only', async t => {
    const lines: Line[] = []
    for (const [id, tenant] of [[call1, TENANT], [call2, TENANT], [callOther, OTHER_TENANT]] as const) {
      const line = await got(analytics, id)
      lines.push(line)
      const data = line.data as Record<string, unknown>
      t.match(line, { type: 'call.ended', tenant, routing_key: 'comms.call.ended' })
      t.match(data.transcript, EVG, 'the transcript as evg:v1:k1:…')
      t.same(line.opened, { '/transcript': TRANSCRIPT }, 'the recipe decrypts it to exactly what was posted')
      t.not(line.probe_tenant, tenant, 'the probe is another tenant')
      t.same(line.as_other_tenant, { '/transcript': INVALID_TAG }, 'another tenant (its key, its additional data) does not open it')
      t.same(line.tampered, { '/transcript': INVALID_TAG }, 'a flipped bit in the tag does not open')
      const { transcript: _t, ...rest } = callEnded()
      t.match(data, rest, 'the other fields as sent')
      t.notMatch(line.body, MARKER, 'nothing of the transcript in the body')
      t.notMatch(JSON.stringify(line.headers), MARKER, 'nor in the headers')
    }
    t.not(field(lines[1] as Line, 'transcript'), field(lines[0] as Line, 'transcript'), 'each value encrypted with its own IV')
  })

  await t.test('the contact: hashed, the recipe\'s hash equals the gateway\'s, per tenant', async t => {
    const [one, two, other] = [await got(analytics, survey1), await got(analytics, survey2), await got(analytics, surveyOther)]
    const contact = (l: Line) => field(l, 'contact_id')
    t.match(contact(one), HEX)
    t.equal(contact(one), hashOf(one, 'k1', CONTACT), 'hashed(contact, k1, tenant) is what the gateway sent')
    t.same(one.joined, { '/contact_id': { value: CONTACT, key: 'k1' } }, 'the consumer joins it on its own contact list')
    t.equal(contact(two), contact(one), 'the same contact hashes the same for one tenant')
    t.not(contact(other), contact(one), 'and differently for another tenant')
    t.equal(contact(other), hashOf(other, 'k1', CONTACT), 'which the recipe reproduces with that tenant')
    t.same(one.opened, {}, 'nothing encrypted in a survey outcome')
    const { contact_id: _c, call_id: _id, ...rest } = surveyCompleted()
    t.match(one.data, rest, 'the other fields in clear')
  })

  await t.test('trusted gets every field in clear, the same events', async t => {
    for (const id of [call1, call2, callOther]) {
      const line = await got(trusted, id)
      t.equal(field(line, 'transcript'), TRANSCRIPT, 'the transcript in clear')
      t.match(line.body, MARKER)
      t.same(line.opened, {})
    }
    for (const id of [survey1, survey2, surveyOther]) {
      t.equal(field(await got(trusted, id), 'contact_id'), CONTACT, 'the contact in clear')
    }
  })

  await t.test('the local store keeps the transcript hashed, and its read-back returns what it stored', async t => {
    const line = await got(analytics, call1)
    const lineOther = await got(analytics, callOther)
    const mine = await readBack(app, 'call.ended')
    t.equal(mine.status, 200)
    t.same(mine.events.map(e => e.id), [call1, call2], 'the tenant\'s two calls')
    for (const e of mine.events) {
      t.equal(e.data.transcript, hashOf(line, 'k1', TRANSCRIPT), 'the transcript as the recipe hashes it for the tenant')
      t.equal(e.data.outcome, callEnded().outcome)
    }
    t.notMatch(mine.body, MARKER, 'no raw transcript in the read-back')
    const theirs = await readBack(app, 'call.ended', OTHER_TENANT)
    t.same(theirs.events.map(e => e.id), [callOther])
    t.equal(theirs.events[0]?.data.transcript, hashOf(lineOther, 'k1', TRANSCRIPT), 'another tenant\'s hash')
    t.not(theirs.events[0]?.data.transcript, mine.events[0]?.data.transcript)
    const surveys = await readBack(app, 'survey.completed')
    t.same(surveys.events.map(e => e.data.contact_id), [CONTACT, CONTACT], 'the store protects only what its rules name')
    // The embedded store's files (SQLite, its WAL) under DATA_DIR.
    const stored = readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .map(f => { try { return readFileSync(join(dir, f)).toString('latin1') } catch { return '' } }).join('\n')
    t.notMatch(stored, MARKER, 'no file under DATA_DIR holds the transcript')
  })

  await t.test('a transcript chunk: dropped at analytics, in clear at trusted, encrypted in the local store', async t => {
    const dropped = await got(analytics, chunk)
    t.notOk('transcript' in (dropped.data as object), 'the field is gone')
    t.equal(field(dropped, 'language'), exampleOf('call.transcribed').language, 'the others as sent')
    t.notMatch(dropped.body, MARKER)
    t.equal(field(await got(trusted, chunk), 'transcript'), TRANSCRIPT)
    const stored = (await readBack(app, 'call.transcribed')).events
    t.same(stored.map(e => e.id), [chunk])
    const value = stored[0]?.data.transcript as string
    t.match(value, EVG)
    const keys = new ProtectionKeys('k1', new Map([['k1', Buffer.from(K1, 'base64')]]))
    t.equal(decryptValue(keys, { tenant: TENANT, type: 'call.transcribed', pointer: '/transcript' }, value), TRANSCRIPT)
  })

  await t.test('nothing dropped or malformed', async t => {
    for (const c of [analytics, trusted]) t.equal(c.stderr.trim(), '', `${c.name} said nothing on stderr`)
  })
})

t.test('rotation: values encrypted under k1 still open once k2 is active and listed with it; new values carry k2', { skip }, async t => {
  const x = exchanges(t)
  const dir = dataDir(t)
  const recipePath = recipe(t)
  const first = await gateway(t, x, KEYS_K1, dir)
  // A consumer that knows k1 only, and a queue whose consumer starts after the rotation, knowing both.
  const [beforeQueue, afterQueue] = queues(t, uniqueName('analytics-k1'), uniqueName('analytics-k1-k2')) as [string, string]
  const before = consumer(t, 'analytics (k1)', x.analytics, beforeQueue, { k1: K1 }, recipePath)
  await before.waitFor(l => 'ready' in l, 'ready line')
  const conn = await amqplib.connect(AMQP_URL)
  t.teardown(() => conn.close().catch(() => undefined))
  const ch = await conn.createChannel()
  await ch.assertQueue(afterQueue, { durable: true })
  await ch.bindQueue(afterQueue, x.analytics, '#')
  await Consumer.bind(t, x.trusted)

  const oldCall = await send(t, first.app, 'call.ended', callEnded())
  const oldSurvey = await send(t, first.app, 'survey.completed', surveyCompleted())
  t.match(field(await before.waitFor(l => l.id === oldCall, 'the k1 call'), 'transcript'), EVG)
  await first.close()

  // The restart: k2 active, k1 still listed; the same DATA_DIR.
  const second = await gateway(t, x, KEYS_K2, dir)
  const newCall = await send(t, second.app, 'call.ended', callEnded())
  const newSurvey = await send(t, second.app, 'survey.completed', surveyCompleted())
  const after = consumer(t, 'analytics (k1, k2)', x.analytics, afterQueue, { k1: K1, k2: K2 }, recipePath)

  const old = await after.waitFor(l => l.id === oldCall, 'the k1 call, queued across the rotation')
  t.match(field(old, 'transcript'), EVG, 'encrypted under k1 by the first gateway')
  t.same(old.opened, { '/transcript': TRANSCRIPT }, 'opens with the secrets of both keys')
  const fresh = await after.waitFor(l => l.id === newCall, 'the k2 call')
  t.match(field(fresh, 'transcript'), /^evg:v1:k2:[A-Za-z0-9_-]+$/, 'a new value carries k2')
  t.same(fresh.opened, { '/transcript': TRANSCRIPT }, 'and opens with them')
  t.same(fresh.as_other_tenant, { '/transcript': INVALID_TAG }, 'not as another tenant\'s')
  t.same(fresh.tampered, { '/transcript': INVALID_TAG }, 'nor tampered with')
  const stale = await before.waitFor(l => l.id === newCall, 'the k2 call')
  t.match(stale.opened, { '/transcript': { error: String } }, 'a consumer without k2 does not open it')

  // Hashes change with the active key: a join across the rotation needs both.
  const contact = (l: Line) => field(l, 'contact_id')
  const oldHash = await after.waitFor(l => l.id === oldSurvey, 'the k1 survey')
  const newHash = await after.waitFor(l => l.id === newSurvey, 'the k2 survey')
  t.equal(contact(oldHash), hashOf(oldHash, 'k1', CONTACT), 'before the rotation: the recipe\'s hash with k1')
  t.same(oldHash.joined, { '/contact_id': { value: CONTACT, key: 'k1' } })
  t.equal(contact(newHash), hashOf(newHash, 'k2', CONTACT), 'after: with k2')
  t.same(newHash.joined, { '/contact_id': { value: CONTACT, key: 'k2' } })
  t.not(contact(newHash), contact(oldHash), 'the same contact hashes differently across the rotation')

  // The store kept what it stored before the restart, and stores new values under k2.
  const stored = await readBack(second.app, 'call.ended')
  t.same(stored.events.map(e => e.id), [oldCall, newCall], 'both calls, across the restart')
  t.same(
    stored.events.map(e => e.data.transcript),
    [hashOf(old, 'k1', TRANSCRIPT), hashOf(old, 'k2', TRANSCRIPT)],
    'the first hashed with k1, as stored; the second with k2'
  )
  t.notMatch(stored.body, MARKER, 'no raw transcript in the read-back')
  for (const c of [before, after]) t.equal(c.stderr.trim(), '', `${c.name} said nothing on stderr`)
})
