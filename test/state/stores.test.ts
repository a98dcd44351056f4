import { randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { openDatabase } from '../../src/storage/database.js'
import type { GatewayEvent } from '../../src/envelopes/event.js'
import { StateUnavailableError, type IdempotencyStore } from '../../src/state/idempotency.js'
import { openStateStore } from '../../src/state/index.js'
import { LocalRateLimiter, type RateLimiter } from '../../src/state/rate-limiter.js'
import { Redis } from 'ioredis'
import pino from 'pino'
import { RedisState } from '../../src/state/redis.js'
import { SqliteIdempotencyStore } from '../../src/state/sqlite.js'
import { dataDir } from '../helper.js'
import { serviceSkip } from '../services.js'

// One contract, both stores: what Intake relies on. Redis is the real one on this machine
// (database 11, keys under random tenants, so runs do not see each other).
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/11'

const redisSkip = await serviceSkip('Redis', {
  at: REDIS_URL,
  probe: async () => {
    const redis = new RedisState(REDIS_URL, { commandTimeoutMs: 1000 })
    await redis.connect()
    const down = redis.down
    await redis.close()
    if (down !== undefined) throw new Error(down)
  }
})

type Stores = IdempotencyStore & RateLimiter
const stores: Record<string, { skip: string | false, open: (t: Test) => Promise<Stores> }> = {
  sqlite: {
    skip: false,
    open: async t => {
      const db = openDatabase(dataDir(t))
      const keys = new SqliteIdempotencyStore(db)
      const buckets = new LocalRateLimiter()
      await keys.connect()
      t.teardown(async () => { buckets.close(); await keys.close(); db.close() })
      return Object.assign(Object.create(null) as Stores, {
        reserve: keys.reserve.bind(keys),
        complete: keys.complete.bind(keys),
        keepPartial: keys.keepPartial.bind(keys),
        release: keys.release.bind(keys),
        take: buckets.take.bind(buckets)
      })
    }
  },
  redis: {
    skip: redisSkip,
    open: async t => {
      const redis = new RedisState(REDIS_URL, { commandTimeoutMs: 1000 })
      await redis.connect()
      t.teardown(() => redis.close())
      return redis
    }
  }
}

const event = { id: 'e-1', type: 'call.ended' } as unknown as GatewayEvent

for (const [name, { skip, open }] of Object.entries(stores)) {
  t.test(`${name}: one holder per key; a repeat sees it busy, another request a conflict; the answer is kept`, { skip }, async t => {
    const store = await open(t)
    const ref = { tenant: randomUUID(), key: 'k', print: 'p1' }
    const first = await store.reserve(ref, 10_000)
    if (first.state !== 'reserved') throw new Error(`reserved expected, got ${first.state}`)
    t.notOk(first.partial)
    const busy = await store.reserve(ref, 10_000)
    t.equal(busy.state, 'busy')
    t.ok(busy.state === 'busy' && busy.retryInMs > 0 && busy.retryInMs <= 10_000)
    t.same(await store.reserve({ ...ref, print: 'p2' }, 10_000), { state: 'conflict' })
    await store.complete(ref, 'not-the-token', { status: 202, body: { id: 'wrong' } })
    t.equal((await store.reserve(ref, 10_000)).state, 'busy', 'a stale token settles nothing')
    await store.complete(ref, first.token, { status: 202, body: { id: 'e-1' } })
    t.same(await store.reserve(ref, 10_000), { state: 'done', answer: { status: 202, body: { id: 'e-1' } } })
    t.equal((await store.reserve({ ...ref, tenant: randomUUID() }, 10_000)).state, 'reserved', 'keys are per tenant')
  })

  t.test(`${name}: a partly delivered event is kept for the next holder; a release gives the key back`, { skip }, async t => {
    const store = await open(t)
    const ref = { tenant: randomUUID(), key: 'partial', print: 'p' }
    const first = await store.reserve(ref, 10_000)
    if (first.state !== 'reserved') throw new Error('not reserved')
    await store.keepPartial(ref, first.token, { event, delivered: ['store'] })
    const second = await store.reserve(ref, 10_000)
    t.match(second, { state: 'reserved', partial: { event: { id: 'e-1' }, delivered: ['store'] } })
    t.equal((await store.reserve(ref, 10_000)).state, 'busy', 'held while it completes')
    if (second.state !== 'reserved') throw new Error('not reserved')
    await store.release(ref, second.token)
    t.match(
      await store.reserve(ref, 10_000),
      { state: 'reserved', partial: { delivered: ['store'] } },
      'released: the partial event again, not a fresh key'
    )

    const fresh = { tenant: ref.tenant, key: 'fresh', print: 'p' }
    const held = await store.reserve(fresh, 10_000)
    if (held.state !== 'reserved') throw new Error('not reserved')
    await store.release(fresh, held.token)
    const again = await store.reserve(fresh, 10_000)
    t.equal(again.state, 'reserved')
    t.notOk(again.state === 'reserved' && again.partial, 'nothing kept for a key nothing was published under')
  })

  t.test(`${name}: a holder that died loses the key when its lease ends; its late answer changes nothing`, { skip }, async t => {
    const store = await open(t)
    const ref = { tenant: randomUUID(), key: 'lease', print: 'p' }
    const dead = await store.reserve(ref, 50)
    if (dead.state !== 'reserved') throw new Error('not reserved')
    await new Promise(resolve => setTimeout(resolve, 120))
    const next = await store.reserve(ref, 10_000)
    if (next.state !== 'reserved') throw new Error(`taken over expected, got ${next.state}`)
    await store.complete(ref, dead.token, { status: 202, body: { id: 'late' } })
    t.equal((await store.reserve(ref, 10_000)).state, 'busy', 'still the new holder\'s')
    await store.complete(ref, next.token, { status: 202, body: { id: 'new' } })
    t.match(await store.reserve(ref, 10_000), { state: 'done', answer: { body: { id: 'new' } } })
  })

  t.test(`${name}: rate-limit buckets: the burst at once, then the rate; a refusal takes nothing`, { skip }, async t => {
    const store = await open(t)
    const tenant = randomUUID()
    const limit = { perSecond: 10, burst: 3 }
    const taken = []
    for (let i = 0; i < 3; i++) taken.push(await store.take(tenant, 1, limit))
    t.same(taken.map(x => x.allowed), [true, true, true])
    t.ok((taken[2]?.fullInMs ?? 0) > 250 && (taken[2]?.fullInMs ?? 0) <= 300, 'full again after three intervals')
    const refused = await store.take(tenant, 2, limit)
    t.equal(refused.allowed, false)
    t.ok(refused.retryInMs > 100 && refused.retryInMs <= 200, `two fit in about 200 ms (${refused.retryInMs})`)
    t.equal((await store.take(randomUUID(), 3, limit)).allowed, true, 'another tenant: its own bucket')
    await new Promise(resolve => setTimeout(resolve, 120))
    t.equal((await store.take(tenant, 1, limit)).allowed, true, 'refilled at the rate')
    const big = randomUUID()
    const whole = await store.take(big, 10, limit)
    t.equal(whole.allowed, true, 'more than the burst, from a full bucket')
    const owed = await store.take(big, 1, limit)
    t.equal(owed.allowed, false)
    t.ok(owed.retryInMs > 650 && owed.retryInMs <= 800, `then it owes them: ${owed.retryInMs} ms until one more fits`)
  })
}

t.test('sqlite: an answer that cannot be written is still replayed by this process; a stopped writer refuses keys', async t => {
  const dir = dataDir(t)
  const db = openDatabase(dir)
  const store = new SqliteIdempotencyStore(db)
  await store.connect()
  // Another connection holds the write lock past the writer's busy timeout (5 s): SQLITE_BUSY.
  const blocker = openDatabase(dir)
  blocker.exec('BEGIN IMMEDIATE')
  const ref = { tenant: randomUUID(), key: 'unwritten', print: 'p' }
  const held = await store.reserve(ref, 10_000)
  if (held.state !== 'reserved') throw new Error('not reserved')
  await t.rejects(store.complete(ref, held.token, { status: 202, body: { id: 'kept' } }), { code: 'SQLITE_BUSY' })
  t.match(await store.reserve(ref, 10_000), { state: 'done', answer: { body: { id: 'kept' } } }, 'kept in memory')
  blocker.exec('ROLLBACK')
  blocker.close()
  await store.close()
  await t.rejects(store.reserve({ ...ref, key: 'after-close' }, 10_000), StateUnavailableError)
  db.close()
})

t.test('redis: unreachable, every call fails at once with StateUnavailableError; down says so', async t => {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  const redis = new RedisState(`redis://:secret-password@127.0.0.1:${port}/0`, { commandTimeoutMs: 200 })
  await redis.connect()
  t.teardown(() => redis.close())
  t.match(redis.down, /^redis is /)
  const started = Date.now()
  const err = await redis.reserve({ tenant: 't', key: 'k', print: 'p' }, 1000).catch((e: unknown) => e)
  t.ok(err instanceof StateUnavailableError)
  t.notMatch((err as Error).message, /secret-password/, 'no credentials in the error')
  t.ok(Date.now() - started < 1000, 'no waiting for a reconnect')
  await t.rejects(redis.take('t', 1, { perSecond: 1, burst: 1 }), StateUnavailableError)
  await t.rejects(redis.complete({ tenant: 't', key: 'k', print: 'p' }, 'x', { status: 202, body: {} }), StateUnavailableError)
})

t.test(
  'redis: calls made in one tick (gathered into one script per tenant) keep their own answers; a broken key fails alone',
  { skip: redisSkip },
  async t => {
    const store = new RedisState(REDIS_URL, { commandTimeoutMs: 1000 })
    await store.connect()
    const raw = new Redis(REDIS_URL)
    t.teardown(async () => { await store.close(); raw.disconnect() })
    const tenant = randomUUID()
    const other = randomUUID()
    await raw.set(`evg:idem:{${tenant}}:not-a-hash`, 'x', 'EX', 60)
    const refs = Array.from({ length: 20 }, (_, i) => ({ tenant: i % 2 === 0 ? tenant : other, key: `k${i}`, print: 'p' }))
    const [same1, same2, broken, ...fresh] = await Promise.all([
      store.reserve({ tenant, key: 'same', print: 'p' }, 10_000),
      store.reserve({ tenant, key: 'same', print: 'p' }, 10_000),
      store.reserve({ tenant, key: 'not-a-hash', print: 'p' }, 10_000).catch((err: unknown) => err),
      ...refs.map(ref => store.reserve(ref, 10_000))
    ])
    t.same([same1?.state, same2?.state], ['reserved', 'busy'], 'the same key twice in one tick: one holder')
    t.ok(broken instanceof StateUnavailableError, 'a key that is not a hash fails alone')
    t.ok(fresh.every(r => r?.state === 'reserved'))
    await Promise.all(refs.map((ref, i) => {
      const r = fresh[i]
      return r?.state === 'reserved' ? store.complete(ref, r.token, { status: 202, body: { id: ref.key } }) : undefined
    }))
    const again = await Promise.all(refs.map(ref => store.reserve(ref, 10_000)))
    const answered = again.map(r => r.state === 'done' ? (r.answer.body as { id: string }).id : r.state)
    t.same(answered, refs.map(ref => ref.key), 'each answer under its own key')
    await t.rejects(store.complete({ tenant, key: 'not-a-hash', print: 'p' }, 'x', { status: 202, body: {} }), StateUnavailableError)
  }
)

t.test('redis: finishes gathered when the store closes are sent before it quits', { skip: redisSkip }, async t => {
  const ref = { tenant: randomUUID(), key: 'closing', print: 'p' }
  const store = new RedisState(REDIS_URL, { commandTimeoutMs: 1000 })
  await store.connect()
  const held = await store.reserve(ref, 10_000)
  if (held.state !== 'reserved') throw new Error('not reserved')
  const completed = store.complete(ref, held.token, { status: 202, body: { id: 'e-closing' } })
  await store.close()
  await completed
  const next = new RedisState(REDIS_URL, { commandTimeoutMs: 1000 })
  await next.connect()
  t.teardown(() => next.close())
  t.match(await next.reserve(ref, 10_000), { state: 'done', answer: { body: { id: 'e-closing' } } })
})

t.test('openStateStore: STATE_URL gives the Redis store (keys and buckets in Redis), up once connected', { skip: redisSkip }, async t => {
  const db = openDatabase(dataDir(t))
  t.teardown(() => db.close())
  const state = openStateStore({ STATE_URL: REDIS_URL, STATE_TIMEOUT_MS: 1000 }, db, pino({ level: 'silent' }))
  t.equal(state.kind, 'redis')
  await state.connect()
  t.equal(state.down(), undefined)
  t.equal((await state.idempotency.reserve({ tenant: randomUUID(), key: 'k', print: 'p' }, 1000)).state, 'reserved')
  t.equal((await state.rateLimiter.take(randomUUID(), 1, { perSecond: 1, burst: 1 })).allowed, true)
  await state.close()
})

t.test('local rate limits: past 100,000 tenants the least recently used buckets go (and start full again)', async t => {
  const buckets = new LocalRateLimiter()
  t.teardown(() => buckets.close())
  const limit = { perSecond: 0.001, burst: 1 }
  let allowed = 0
  for (let i = 0; i <= 100_000; i++) if ((await buckets.take(`tenant-${i}`, 1, limit)).allowed) allowed++
  t.equal(allowed, 100_001, 'each tenant its own bucket')
  t.equal((await buckets.take('tenant-100000', 1, limit)).allowed, false, 'a recent bucket is kept: still empty')
  t.equal((await buckets.take('tenant-0', 1, limit)).allowed, true, 'the oldest went: full again')
})
