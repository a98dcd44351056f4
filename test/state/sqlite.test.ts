import t, { type Test } from 'tap'
import { openDatabase } from '../../src/storage/database.js'
import type { GatewayEvent } from '../../src/envelopes/event.js'
import { IDEMPOTENCY_TTL_MS } from '../../src/state/idempotency.js'
import { KeyFilter, keyHash } from '../../src/state/key-filter.js'
import { SqliteIdempotencyStore } from '../../src/state/sqlite.js'
import { dataDir } from '../helper.js'

const ref = (key: string, tenant = 't') => ({ tenant, key, print: 'p' })

async function completed (store: SqliteIdempotencyStore, key: string, tenant = 't'): Promise<void> {
  const r = await store.reserve(ref(key, tenant), 1000)
  if (r.state !== 'reserved') throw new Error(`not reserved: ${r.state}`)
  await store.complete(ref(key, tenant), r.token, { status: 202, body: { id: key } })
}

/**
 * A store opened on a database written earlier: `done` replays its answer and refuses another
 * event; `partial` gives back its partly delivered event `eventId`, then is completed with it.
 */
async function keptKeysReplay (t: Test, store: SqliteIdempotencyStore, done: string, partial: string, eventId: string): Promise<void> {
  t.match(await store.reserve(ref(done), 1000), { state: 'done', answer: { status: 202, body: { id: done } } })
  t.same(await store.reserve({ ...ref(done), print: 'other' }, 1000), { state: 'conflict' })
  const held = await store.reserve(ref(partial), 1000)
  t.match(held, { state: 'reserved', partial: { event: { id: eventId }, delivered: ['store'] } })
  if (held.state !== 'reserved') throw new Error('not reserved')
  await store.complete(ref(partial), held.token, { status: 202, body: { id: eventId } })
}

t.test('the purge deletes expired keys through the created_at index, off the event loop', async t => {
  const db = openDatabase(dataDir(t))
  const store = new SqliteIdempotencyStore(db)
  t.teardown(async () => { await store.close(); db.close() })
  await store.connect()
  const plan = db.prepare('EXPLAIN QUERY PLAN DELETE FROM idempotency_keys WHERE created_at <= ?').all(0) as { detail: string }[]
  t.match(plan.map(p => p.detail).join(' '), /USING (COVERING )?INDEX idempotency_keys_created_at/)
  for (const key of ['old-1', 'old-2', 'new']) await completed(store, key)
  // The store stamps keys with the clock; the purge takes `now`, so both old keys are exactly 1 ms past it.
  const now = Date.now()
  db.prepare('UPDATE idempotency_keys SET created_at = ? WHERE key LIKE ?').run(now - IDEMPOTENCY_TTL_MS - 1, 'old-%')
  t.equal(await store.purgeExpired(now - 2), 0, 'a millisecond earlier, they were not yet expired')
  t.equal(await store.purgeExpired(now), 2)
  t.match(await store.reserve(ref('new'), 1000), { state: 'done', answer: { body: { id: 'new' } } })
  t.match(await store.reserve(ref('old-1'), 1000), { state: 'reserved' })
})

t.test('a key is found through the hash index, never by a scan; keys whose hashes collide stay apart', async t => {
  const db = openDatabase(dataDir(t))
  t.teardown(() => db.close())
  const store = new SqliteIdempotencyStore(db)
  await store.connect()
  const lookup = 'SELECT fingerprint, status, body FROM idempotency_keys ' +
    'WHERE hash = ? AND tenant = ? AND key = ? AND created_at > ? ORDER BY id DESC LIMIT 1'
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${lookup}`).all(0, 't', 'k', 0) as { detail: string }[]
  t.match(plan.map(p => p.detail).join(' '), /USING INDEX idempotency_keys_hash/)
  t.notMatch(plan.map(p => p.detail).join(' '), /TEMP B-TREE/, 'no sort')
  await completed(store, 'a')
  await completed(store, 'b')
  await store.close()
  // Both rows under one hash: only tenant and key tell them apart.
  db.prepare('UPDATE idempotency_keys SET hash = ?').run(keyHash('t', 'a'))
  const restarted = new SqliteIdempotencyStore(db)
  await restarted.connect()
  t.teardown(() => restarted.close())
  t.match(await restarted.reserve(ref('a'), 1000), { state: 'done', answer: { body: { id: 'a' } } })
  t.match(
    await restarted.reserve(ref('b'), 1000),
    { state: 'reserved' },
    'b\'s row is under another hash now: not found, not mistaken for a\'s'
  )
  t.match(await restarted.reserve(ref('a', 'other'), 1000), { state: 'reserved' }, 'another tenant\'s key of the same name')
})

t.test('after a restart, keys written before it replay (the filter is filled from the table); ' +
  'partly delivered events are kept', async t => {
  const dir = dataDir(t)
  const db = openDatabase(dir)
  const store = new SqliteIdempotencyStore(db)
  await store.connect()
  await completed(store, 'before')
  const partial = await store.reserve(ref('partial'), 1000)
  if (partial.state !== 'reserved') throw new Error('not reserved')
  const event = { id: 'e-1', type: 'call.ended' } as unknown as GatewayEvent
  await store.keepPartial(ref('partial'), partial.token, { event, delivered: ['store'] })
  await store.close()
  db.close()

  const db2 = openDatabase(dir)
  const again = new SqliteIdempotencyStore(db2)
  t.teardown(async () => { await again.close(); db2.close() })
  await again.connect()
  await keptKeysReplay(t, again, 'before', 'partial', 'e-1')
  t.match(await again.reserve(ref('partial'), 1000), { state: 'done', answer: { body: { id: 'e-1' } } })
  await again.purgeExpired() // a round trip through the writer: the answer is committed
  t.same(
    db2.prepare('SELECT status FROM idempotency_keys WHERE key = ?').pluck().all('partial'),
    [202],
    'the answer replaced the partly delivered event: one row'
  )
  t.match(await again.reserve(ref('fresh'), 1000), { state: 'reserved' })
})

t.test('keys kept by the previous version (table idempotency) still replay; the table goes once they have expired', async t => {
  const dir = dataDir(t)
  const old = openDatabase(dir)
  old.exec(`CREATE TABLE idempotency (
      tenant TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
      status INTEGER NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL,
      PRIMARY KEY (tenant, key)) WITHOUT ROWID;
      CREATE INDEX idempotency_created_at ON idempotency (created_at)`)
  const put = old.prepare('INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)')
  const now = Date.now() // the store reads the clock when it opens and reserves: the rows are dated from it
  put.run('t', 'kept', 'p', 202, '{"id":"kept"}', now - 1000)
  put.run('t', 'expired', 'p', 202, '{"id":"expired"}', now - IDEMPOTENCY_TTL_MS - 1000)
  put.run('t', 'half', 'p', 0, '{"event":{"id":"e-9"},"delivered":["store"]}', now - 1000)
  old.close()

  const db = openDatabase(dir)
  const store = new SqliteIdempotencyStore(db)
  await store.connect()
  await keptKeysReplay(t, store, 'kept', 'half', 'e-9')
  t.match(await store.reserve(ref('expired'), 1000), { state: 'reserved', partial: undefined })
  t.equal(await store.purgeExpired(now), 1, 'the expired old key is purged')
  t.match(
    await store.reserve(ref('half'), 1000),
    { state: 'done', answer: { body: { id: 'e-9' } } },
    'the new answer, over the old table\'s partly delivered event'
  )
  await store.close()
  db.close()

  const later = openDatabase(dir)
  later.prepare('UPDATE idempotency SET created_at = ?').run(Date.now() - IDEMPOTENCY_TTL_MS - 1)
  const next = new SqliteIdempotencyStore(later)
  t.teardown(async () => { await next.close(); later.close() })
  await next.connect()
  t.equal(
    later.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'idempotency'").pluck().get(),
    0,
    'all its keys expired: the old table is dropped'
  )
  t.match(await next.reserve(ref('half'), 1000), { state: 'done', answer: { body: { id: 'e-9' } } })
  t.match(await next.reserve(ref('kept'), 1000), { state: 'reserved' })
})

t.test('KeyFilter: no false negatives, few false positives; a key stays for 24 hours at least, then goes', async t => {
  const start = 1_000_000
  const filter = new KeyFilter(start)
  const added = Array.from({ length: 50_000 }, (_, i) => keyHash('tenant', `key-${i}`))
  for (const h of added) filter.add(h, start)
  t.ok(added.every(h => filter.mayHave(h, start)), 'every key added is there')
  let positives = 0
  for (let i = 0; i < 50_000; i++) if (filter.mayHave(keyHash('tenant', `other-${i}`), start)) positives++
  t.ok(positives < 50, `false positives: ${positives} of 50,000`)
  const later = start + IDEMPOTENCY_TTL_MS - 1
  filter.add(keyHash('tenant', 'late'), later)
  t.ok(filter.mayHave(added[0]!, later), 'still there just before 24 hours')
  const nextDay = start + IDEMPOTENCY_TTL_MS + 1
  t.ok(filter.mayHave(added[0]!, nextDay) && filter.mayHave(keyHash('tenant', 'late'), nextDay), 'a new generation keeps the previous one')
  t.ok(filter.mayHave(keyHash('tenant', 'late'), later + IDEMPOTENCY_TTL_MS), 'a key added late in a day stays a full 24 hours')
  const after = nextDay + IDEMPOTENCY_TTL_MS
  t.notOk(added.slice(0, 100).some(h => filter.mayHave(h, after)), 'two generations on, the first day\'s keys are gone')

  const idle = new KeyFilter(start)
  idle.add(added[0]!, start)
  t.notOk(idle.mayHave(added[0]!, start + 3 * IDEMPOTENCY_TTL_MS), 'after two idle days, nothing is left')
})

t.test('keyHash: a safe integer, different for tenant and key boundaries', async t => {
  const h = keyHash('ab', 'c')
  t.ok(Number.isSafeInteger(h) && h >= 0)
  t.not(h, keyHash('a', 'bc'))
  t.equal(h, keyHash('ab', 'c'))
})
