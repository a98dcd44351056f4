import t from 'tap'
import { openDatabase } from '../../src/database.js'
import { IDEMPOTENCY_TTL_MS } from '../../src/idempotency.js'
import { SqliteIdempotencyStore } from '../../src/state/sqlite.js'
import { dataDir } from '../helper.js'

const ref = (key: string) => ({ tenant: 't', key, print: 'p' })

t.test('the purge deletes expired keys through the created_at index, off the event loop', async t => {
  const db = openDatabase(dataDir(t))
  const store = new SqliteIdempotencyStore(db)
  t.teardown(async () => { await store.close(); db.close() })
  await store.connect()
  const plan = db.prepare('EXPLAIN QUERY PLAN DELETE FROM idempotency WHERE created_at <= ?').all(0) as { detail: string }[]
  t.match(plan.map(p => p.detail).join(' '), /USING (COVERING )?INDEX idempotency_created_at/)
  for (const key of ['old-1', 'old-2', 'new']) {
    const r = await store.reserve(ref(key), 1000)
    if (r.state !== 'reserved') throw new Error('not reserved')
    await store.complete(ref(key), r.token, { status: 202, body: { id: key } })
  }
  db.prepare('UPDATE idempotency SET created_at = ? WHERE key LIKE ?').run(Date.now() - IDEMPOTENCY_TTL_MS - 1, 'old-%')
  t.equal(await store.purgeExpired(), 2)
  t.match(await store.reserve(ref('new'), 1000), { state: 'done', answer: { body: { id: 'new' } } })
  t.match(await store.reserve(ref('old-1'), 1000), { state: 'reserved' })
})
