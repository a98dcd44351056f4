// Field protection at rest, against the real RabbitMQ, PostgreSQL and Redis: after a run with
// fan-out, spooled destinations (events waiting in the outbox, dead letters) and failed partial
// deliveries kept for their idempotency keys, no raw value of a protected field is in any file
// under DATA_DIR, in the outbox (SQLite or PostgreSQL), in the idempotency store (SQLite or
// Redis), in a log line (LOG_LEVEL=trace) or in a span. Each place is shown to hold data first, so
// that finding nothing there means something; a trusted destination gets the values in clear,
// which shows they were sent.
import { randomBytes, randomUUID } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import Database from 'better-sqlite3'
import { Redis } from 'ioredis'
import pg from 'pg'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { decryptValue, hashValue } from '../../src/protection/values.js'
import { createAjv } from '../../src/validation/index.js'
import { dataDir, exampleOf, LogCapture, post, postBatch, testConfig } from '../helper.js'
import { PG_URL, pgSchema, pgSkip } from '../postgres.js'
import { serviceSkip } from '../services.js'
import { AMQP_URL, cleanupExchange, Consumer, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

// A Redis database of this file's own (the other tests use 11): flushed before and after.
const REDIS_DB = 14
const REDIS_URL = (() => {
  const url = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379')
  url.pathname = `/${REDIS_DB}`
  return url.toString()
})()
/** A RabbitMQ nobody listens on: its destinations fail at once, retryably (disconnected). */
const DOWN_URL = 'amqp://guest:guest@127.0.0.1:1'

const skip = await rabbitSkip()
if (skip === false) await takeRabbitMqTurn(t)

async function redisSkip (): Promise<string | false> {
  return await serviceSkip('Redis', {
    at: REDIS_URL,
    probe: async () => {
      const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null })
      let why: string | undefined
      redis.on('error', (err: Error) => { why ??= err.message })
      try {
        await redis.connect()
        await redis.ping()
      } catch (err) {
        throw new Error(why ?? String(err)) // ioredis rejects with "Connection is closed"; the error event says why
      } finally {
        redis.disconnect()
      }
    },
    hint: 'start it with redis-server --daemonize yes'
  })
}

const skipShared = skip !== false ? skip : (await pgSkip()) || (await redisSkip())

/** This file's Redis database, empty, emptied again at the end. */
async function redisDb (t: Test): Promise<Redis> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  await redis.flushdb()
  t.teardown(async () => {
    await redis.flushdb().catch(() => undefined)
    await redis.quit().catch(() => undefined)
  })
  return redis
}

/** Polls until `get` gives something; throws (rather than hangs) if it never does. Not a timing assertion. */
async function until<T> (what: string, get: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const value = await get()
    if (value !== undefined && value !== false) return value
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50)) // polling the gateway's relays and stores
  }
}

/** Every file under `dir`, recursively, as bytes (SQLite databases with their -wal and -shm files). */
function filesUnder (dir: string): { path: string, bytes: Buffer }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map(name => join(dir, name))
    .filter(path => statSync(path).isFile())
    .map(path => ({ path, bytes: readFileSync(path) }))
}

/** Everything a span says: name, attributes, events, status, links. */
function spanText (span: ReadableSpan): string {
  return JSON.stringify({
    name: span.name,
    attributes: span.attributes,
    events: span.events.map(e => ({ name: e.name, attributes: e.attributes })),
    status: span.status,
    links: span.links.map(l => l.attributes)
  })
}

interface Sent { type: string, transcript: string }

/**
 * One run: a gateway whose call events go to a sync RabbitMQ destination that encrypts the
 * transcript, the local store that hashes (call.ended) or drops (call.transcribed) it, a spooled
 * destination whose broker is down (its events wait in the outbox, encrypted), a spooled one whose
 * exchange routes nowhere and keeps nothing (its events become dead letters at once, hashed), a
 * trusted one in clear, and, for call.transcribed, a sync destination whose broker is down: every
 * keyed call.transcribed is a failed partial delivery its idempotency key keeps.
 */
async function run (t: Test, mode: 'embedded' | 'shared') {
  const tenant = randomUUID()
  const marker = `MARKER-7f3a-${randomBytes(4).toString('hex')}`
  const PHONE = '555-0134'
  const needles = [marker, PHONE]
  const config = dataDir(t)
  const secret = randomBytes(32).toString('base64')
  const keysFile = join(config, 'keys.json')
  writeFileSync(keysFile, JSON.stringify({ active: 'k1', keys: [{ id: 'k1', secret }] }))
  const keys = ProtectionKeys.load(keysFile, createAjv(), {})
  const exchanges = { sealed: uniqueName('sealed'), buried: uniqueName('buried'), clear: uniqueName('clear') }
  for (const exchange of Object.values(exchanges)) cleanupExchange(t, exchange)
  const routesFile = join(config, 'routes.json')
  writeFileSync(routesFile, JSON.stringify({
    destinations: {
      sealed: {
        broker: 'rabbitmq',
        url: AMQP_URL,
        exchange: exchanges.sealed,
        protect: { 'call.ended': { '/transcript': 'encrypt' }, 'call.transcribed': { '/transcript': 'encrypt' } }
      },
      store: { broker: 'local', protect: { 'call.ended': { '/transcript': 'hash' }, 'call.transcribed': { '/transcript': 'drop' } } },
      queued: {
        broker: 'rabbitmq',
        url: DOWN_URL,
        exchange: uniqueName('queued'),
        delivery: 'spool',
        protect: { 'call.ended': { '/transcript': 'encrypt' }, 'call.transcribed': { '/transcript': 'encrypt' } }
      },
      buried: {
        broker: 'rabbitmq',
        url: AMQP_URL,
        exchange: exchanges.buried,
        alternateExchange: '',
        delivery: 'spool',
        protect: { 'call.ended': { '/transcript': 'hash' } }
      },
      clear: { broker: 'rabbitmq', url: AMQP_URL, exchange: exchanges.clear },
      broken: { broker: 'rabbitmq', url: DOWN_URL, exchange: uniqueName('broken') }
    },
    routes: [
      { types: ['call.ended'], to: ['sealed', 'store', 'queued', 'buried', 'clear'] },
      { types: ['call.transcribed'], to: ['sealed', 'store', 'queued', 'clear', 'broken'] },
      { types: ['*'], to: ['clear'] }
    ]
  }))

  let shared: { schema: string, url: string, redis: Redis } | undefined
  if (mode === 'shared') shared = { ...await pgSchema(t, 'evg_protect'), redis: await redisDb(t) }
  const env: Record<string, string> = {
    LOG_LEVEL: 'trace',
    ROUTES_FILE: routesFile,
    PROTECTION_KEYS_FILE: keysFile,
    PUBLISH_TIMEOUT_MS: '1000',
    RETRY_MAX_ATTEMPTS: '1',
    OUTBOX_RETRY_MAX_MS: '500',
    ...(shared === undefined ? {} : { SPOOL_URL: shared.url, STATE_URL: REDIS_URL })
  }
  const logs = new LogCapture()
  const exporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const gatewayConfig = testConfig(t, env)
  const dir = gatewayConfig.DATA_DIR
  const app = await buildApp(gatewayConfig, { logStream: logs, tracerProvider })
  let closed = false
  t.teardown(async () => { if (!closed) await app.close() })
  await app.ready()
  const sealed = await Consumer.bind(t, exchanges.sealed)
  const clear = await Consumer.bind(t, exchanges.clear)

  // What was sent, by event id; the transcripts all carry the marker.
  const sent = new Map<string, Sent>()
  let n = 0
  const transcript = () => `Customer ${++n} wants a callback, ${marker} callback ${PHONE} tomorrow at 2pm.`
  const ended = () => ({ ...exampleOf('call.ended'), transcript: transcript() })
  const transcribed = () => ({ ...exampleOf('call.transcribed'), transcript: transcript() })
  const headers = (more: Record<string, string> = {}) => ({ 'x-tenant-id': tenant, ...more })
  const key = (name: string) => `${name}-${randomUUID().slice(0, 8)}`

  // Single events: one unkeyed, one keyed and repeated (the repeat is answered from the store).
  const one = ended()
  const first = await app.inject(post('call.ended', one, headers()))
  t.equal(first.statusCode, 202, 'call.ended: taken')
  t.equal(first.json().status, 'queued', 'queued: spooled destinations have it in their outbox')
  sent.set(first.json().id, { type: 'call.ended', transcript: one.transcript })
  const k1 = key('k1')
  const keyedOne = ended()
  const keyed = await app.inject(post('call.ended', keyedOne, headers({ 'idempotency-key': k1 })))
  t.equal(keyed.statusCode, 202)
  sent.set(keyed.json().id, { type: 'call.ended', transcript: keyedOne.transcript })
  const again = await app.inject(post('call.ended', keyedOne, headers({ 'idempotency-key': k1 })))
  t.equal(again.statusCode, 202, 'the keyed repeat')
  t.equal(again.json().id, keyed.json().id, 'answered with the same event')

  // A failed partial delivery: every destination but `broken` takes it; the key keeps it. Its repeat fails again.
  const k2 = key('k2')
  const partial = transcribed()
  const failed = await app.inject(post('call.transcribed', partial, headers({ 'idempotency-key': k2 })))
  t.equal(failed.statusCode, 503, 'call.transcribed: broken could not take it')
  t.same([...failed.json().delivered].sort(), ['clear', 'queued', 'sealed', 'store'], 'the others have it')
  const failedAgain = await app.inject(post('call.transcribed', partial, headers({ 'idempotency-key': k2 })))
  t.equal(failedAgain.statusCode, 503, 'the repeat fails again at broken')
  // (the trusted destination's count below shows it was not sent to them twice)
  t.same([...failedAgain.json().delivered].sort(), ['clear', 'queued', 'sealed', 'store'], 'the others still have it')
  // Unkeyed, it fails too (nothing kept).
  t.equal((await app.inject(post('call.transcribed', transcribed(), headers()))).statusCode, 503)

  // Refused: a bad field beside the transcript, a transcript too long (the 400 names the field, never its value).
  const badDuration = await app.inject(post('call.ended', { ...ended(), duration: 'long' }, headers()))
  t.equal(badDuration.statusCode, 400)
  t.match(badDuration.json(), { code: 'EVG_VALIDATION', errors: [{ path: '/duration' }] })
  const long = `${transcript()} ${'x'.repeat(200_000)}`
  const tooLong = await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: long }, headers()))
  t.equal(tooLong.statusCode, 400)
  t.match(tooLong.json(), { code: 'EVG_VALIDATION', errors: [{ path: '/transcript' }] })

  // Batches: per-event keys; then a key for the whole batch, repeated.
  const k3 = key('k3')
  const k4 = key('k4')
  const batch = [
    { type: 'call.ended', data: ended() },
    { type: 'call.ended', data: ended(), idempotencyKey: k3 },
    { type: 'call.transcribed', data: transcribed(), idempotencyKey: k4 }
  ]
  const batched = await app.inject(postBatch(batch, headers()))
  t.equal(batched.statusCode, 207, 'a batch: the call.transcribed failed')
  const kb = key('kb')
  const whole = [{ type: 'call.ended', data: ended() }, { type: 'call.transcribed', data: transcribed() }]
  const wholeAnswer = await app.inject(postBatch(whole, headers({ 'idempotency-key': kb })))
  t.equal(wholeAnswer.statusCode, 207)
  const wholeAgain = await app.inject(postBatch(whole, headers({ 'idempotency-key': kb })))
  t.equal(wholeAgain.statusCode, 207, 'the keyed batch repeated')
  t.equal(wholeAgain.json().results[0].id, wholeAnswer.json().results[0].id, 'with the same ids')
  for (const [events, answer] of [[batch, batched], [whole, wholeAnswer]] as const) {
    answer.json().results.forEach((r: { id?: string }, i: number) => {
      const event = events[i]
      if (r.id !== undefined && event !== undefined) sent.set(r.id, { type: event.type, transcript: event.data.transcript })
    })
  }
  const endedIds = [...sent].filter(([, s]) => s.type === 'call.ended').map(([id]) => id)
  t.equal(endedIds.length, 5, 'five call.ended taken')
  // call.transcribed: k2 (once), the unkeyed one, k4, the keyed batch's (once).
  const transcribedCount = 4

  // What the destinations got: the trusted one in clear (the marker was sent), the others protected.
  await until('the trusted destination to get every event', () => clear.messages.length >= 5 + transcribedCount)
  await until('the sealed destination to get every event', () => sealed.messages.length >= 5 + transcribedCount)
  const clearBodies = clear.messages.map(m => m.content.toString())
  t.equal(clearBodies.filter(b => b.includes(marker) && b.includes(PHONE)).length, 5 + transcribedCount,
    'the trusted destination got every transcript in clear')
  for (const m of sealed.messages) {
    const envelope = JSON.parse(m.content.toString())
    t.notMatch(m.content.toString(), marker, 'sealed: no raw value in the body')
    const opened = decryptValue(keys, { tenant, type: envelope.type, pointer: '/transcript' }, envelope.data.transcript)
    t.match(opened, marker, 'sealed: the transcript encrypted, and it opens')
  }
  const stored = await app.inject({ method: 'GET', url: '/v1/events?limit=1000', headers: headers() })
  const storedEvents = stored.json().events as { id: string, type: string, data: Record<string, unknown> }[]
  t.equal(storedEvents.length, 5 + transcribedCount, 'the local store has every event')
  for (const e of storedEvents) {
    const s = sent.get(e.id)
    if (e.type === 'call.ended') t.equal(e.data.transcript, hashValue(keys, tenant, s?.transcript), 'store: call.ended hashed')
    else t.notOk('transcript' in e.data, 'store: call.transcribed dropped')
  }

  // The outbox: `queued` waits (its broker is down), `buried`'s events are dead letters (unroutable).
  type Outbox = { store: string, destinations: { name: string, depth: number, deadLetters: number }[] }
  const outbox = await until('the outbox counts', async () => {
    const o = (await app.inject('/v1/admin/outbox')).json() as Outbox
    const of = (name: string) => o.destinations.find(d => d.name === name)
    return (of('queued')?.depth ?? 0) >= 5 + transcribedCount && (of('buried')?.deadLetters ?? 0) >= 5 && o
  })
  t.equal(outbox.store, mode === 'embedded' ? 'sqlite' : 'postgres')
  const dead = (await app.inject('/v1/admin/dead-letters?destination=buried&limit=1000')).json()
  const deadLetters = dead.deadLetters as { eventId: string, reason: string, envelope: { data: Record<string, unknown> } }[]
  t.same(deadLetters.map(d => d.eventId).sort(), [...endedIds].sort(), 'every call.ended is a dead letter of buried')
  for (const d of deadLetters) {
    t.match(d.reason, /unroutable/)
    t.equal(d.envelope.data.transcript, hashValue(keys, tenant, sent.get(d.eventId)?.transcript), 'the dead letter keeps it hashed')
  }

  // The idempotency store keeps the partial deliveries, without their data.
  const partialKeys = [k2, k4, `${kb} 1`]
  if (shared === undefined) {
    const db = new Database(join(dir, 'gateway.db'), { readonly: true, fileMustExist: true })
    type Row = { key: string, status: number, body: string }
    const select = db.prepare<[string], Row>('SELECT key, status, body FROM idempotency_keys WHERE tenant = ?')
    const rows = await until('the partial records', () => {
      const all = select.all(tenant)
      return partialKeys.every(k => all.some(r => r.key === k)) && all
    })
    db.close()
    for (const k of partialKeys) {
      const row = rows.find(r => r.key === k)
      t.equal(row?.status, 0, `${k}: kept as a partial delivery`)
      t.match(JSON.parse(row?.body ?? '{}'), { event: { data: {} }, delivered: Array }, `${k}: without its data`)
    }
    t.ok(rows.some(r => r.key === k1 && r.status === 202), 'the completed key is kept with its answer')
    const outboxDb = new Database(join(dir, 'outbox.db'), { readonly: true, fileMustExist: true })
    const count = (sql: string) => (outboxDb.prepare<[], { n: number }>(sql).get() as { n: number }).n
    t.ok(count("SELECT count(*) AS n FROM outbox WHERE destination = 'queued'") >= 5 + transcribedCount, 'the SQLite outbox has rows')
    t.equal(count("SELECT count(*) AS n FROM dead_letters WHERE destination = 'buried'"), 5, 'and dead letters')
    outboxDb.close()
  } else {
    const { redis } = shared
    for (const k of partialKeys) {
      const record = await until(`the partial record of ${k}`, async () => {
        const h = await redis.hgetall(`evg:idem:{${tenant}}:${k}`)
        return h.s === 'partial' && h
      })
      t.match(JSON.parse(record.b ?? '{}'), { event: { data: {} }, delivered: Array }, `${k}: kept without its data`)
    }
    const client = new pg.Client(PG_URL)
    await client.connect()
    const count = async (sql: string) => Number((await client.query<{ n: string }>(sql)).rows[0]?.n)
    t.ok(await count(`SELECT count(*) AS n FROM ${shared.schema}.spool_outbox WHERE destination = 'queued'`) >= 5 + transcribedCount,
      'the PostgreSQL outbox has rows')
    t.equal(await count(`SELECT count(*) AS n FROM ${shared.schema}.spool_dead_letters WHERE destination = 'buried'`), 5,
      'and dead letters')
    await client.end()
  }

  // Now the search, everywhere.
  const hitsIn = (where: string, text: string | Buffer) => needles.filter(x => text.includes(x)).map(x => `${where}: ${x}`)

  const searchDataDir = (when: string) => {
    const files = filesUnder(dir)
    t.ok(files.some(f => f.path.endsWith('gateway.db')), `${when}: DATA_DIR has the embedded database`)
    if (mode === 'embedded') t.ok(files.some(f => f.path.endsWith('outbox.db')), `${when}: and the outbox`)
    const all = Buffer.concat(files.map(f => f.bytes))
    t.ok(endedIds.every(id => all.includes(id)), `${when}: the files under DATA_DIR hold the events (the search reads them)`)
    if (mode === 'embedded') {
      t.ok(all.includes('evg:v1:k1:'), `${when}: the outbox holds encrypted values`)
      t.ok(partialKeys.every(k => all.includes(k)), `${when}: and the idempotency store the partial keys`)
    }
    t.same(files.flatMap(f => hitsIn(f.path, f.bytes)), [],
      `${when}: no raw protected value in any file under DATA_DIR (${files.map(f => f.path.slice(dir.length + 1)).join(', ')})`)
  }
  searchDataDir('running')

  if (shared !== undefined) {
    const client = new pg.Client(PG_URL)
    await client.connect()
    const tables = (await client.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name', [shared.schema])).rows
    t.ok(tables.length >= 3, `the schema has the outbox's tables (${tables.map(r => r.table_name).join(', ')})`)
    const rows: { where: string, text: string }[] = []
    for (const { table_name: table } of tables) {
      const result = await client.query<{ j: string }>(`SELECT row_to_json(t)::text AS j FROM ${shared.schema}."${table}" t`)
      for (const r of result.rows) rows.push({ where: `${shared.schema}.${table}`, text: r.j })
    }
    await client.end()
    t.ok(rows.some(r => r.text.includes('evg:v1:k1:')), 'PostgreSQL holds the encrypted values (the search reads them)')
    t.ok(endedIds.every(id => rows.some(r => r.text.includes(id))), 'and every event')
    t.same(rows.flatMap(r => hitsIn(r.where, r.text)), [], `no raw protected value in any of the ${rows.length} rows in PostgreSQL`)

    const { redis } = shared
    const entries: { where: string, text: string }[] = []
    for (const name of await redis.keys('*')) {
      const type = await redis.type(name)
      let value: unknown
      if (type === 'string') value = await redis.get(name)
      else if (type === 'hash') value = await redis.hgetall(name)
      else if (type === 'list') value = await redis.lrange(name, 0, -1)
      else if (type === 'set') value = await redis.smembers(name)
      else if (type === 'zset') value = await redis.zrange(name, 0, -1, 'WITHSCORES')
      else if (type === 'stream') value = await redis.xrange(name, '-', '+')
      else value = `(a ${type})`
      entries.push({ where: name, text: `${name} ${JSON.stringify(value)}` })
    }
    t.ok(partialKeys.every(k => entries.some(e => e.where.endsWith(`:${k}`))), `Redis holds the keys (${entries.length} keys)`)
    t.same(entries.flatMap(e => hitsIn(e.where, e.text)), [], `no raw protected value in any of the ${entries.length} keys in Redis`)
  }

  const searchLogsAndSpans = (when: string) => {
    t.ok(logs.lines.length > 0, `${when}: ${logs.lines.length} log lines`)
    t.same(logs.lines.flatMap((l, i) => hitsIn(`log line ${i}`, l)), [], `${when}: no raw protected value in a log line`)
    const spans = exporter.getFinishedSpans()
    t.ok(spans.length > 0, `${when}: ${spans.length} spans`)
    t.ok(spans.some(s => Object.keys(s.attributes).length > 0), `${when}: spans with attributes`)
    t.same(spans.flatMap((s, i) => hitsIn(`span ${i} (${s.name})`, spanText(s))), [], `${when}: no raw protected value in a span`)
  }
  t.equal(app.log.level, 'trace', 'the gateway logs at trace')
  searchLogsAndSpans('running')

  await app.close()
  closed = true
  searchDataDir('closed')
  searchLogsAndSpans('closed')
}

t.test('embedded: SQLite outbox and idempotency keys under DATA_DIR', { skip }, async t => {
  await run(t, 'embedded')
})

t.test('shared: the PostgreSQL outbox and the Redis state', { skip: skipShared }, async t => {
  await run(t, 'shared')
})
