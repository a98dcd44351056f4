// The relay when the outbox cannot take a deletion (a full disk): what it published is not
// published again, however long the outbox refuses.
import t from 'tap'
import pino from 'pino'
import type { OutgoingEvent } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { toRow, type Spooled } from '../../src/spool/outbox.js'
import { Relay } from '../../src/spool/relay.js'
import { SqliteOutbox } from '../../src/spool/sqlite.js'
import { EVENT_TIME, dataDir, outgoing } from '../helper.js'

/** The real embedded outbox, whose deletions fail while `full` is set (as SQLITE_FULL would). */
class FullDisk extends SqliteOutbox {
  full = true
  refused = 0
  override async remove (events: readonly Spooled[]): Promise<void> {
    if (this.full) {
      this.refused++
      throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })
    }
    await super.remove(events)
  }
}

t.test('published events the outbox could not delete are never published again: deleted first once it can', async t => {
  const store = new FullDisk(dataDir(t))
  await store.connect()
  t.teardown(() => store.close())
  await store.append([1, 2, 3].map(i => toRow('rabbitmq', outgoing(`e${i}`), Date.parse(EVENT_TIME))))
  const broker = new MemoryBroker()
  const metrics = createMetrics()
  const delivery = {
    publish: (events: OutgoingEvent[]) => broker.publish(events)
      .then(r => r.map(o => (o.ok ? { ok: true as const } : { ok: false as const, error: o.error as never })))
  }
  const policy = { owner: 'test', batchSize: 100, maxAttempts: 3, baseMs: 10, maxMs: 20, pollMs: 20 }
  const relay = new Relay({ name: 'rabbitmq', broker, delivery }, store, policy, metrics, pino({ level: 'silent' }))
  relay.start()
  t.teardown(() => relay.stop())
  while (store.refused < 5) await new Promise(resolve => setTimeout(resolve, 10)) // the relay's retries, outside our control
  t.same(broker.published.map(e => e.event.id), ['e1', 'e2', 'e3'], 'published once, however often the deletion failed')
  store.full = false
  while (store.totals().events > 0) await new Promise(resolve => setTimeout(resolve, 10))
  t.same(broker.published.map(e => e.event.id), ['e1', 'e2', 'e3'], 'still once, and the outbox is empty')
  t.match(await metrics.registry.getSingleMetricAsString('gateway_outbox_events_total'), /outcome="published"\} 3/)
})
