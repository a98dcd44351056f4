// The relay: when the outbox cannot take a deletion (a full disk), what it published is not
// published again, however long the outbox refuses; an event the broker keeps nacking waits on
// its own, behind later ones; an attempt the broker never answered counts nothing and moves nothing.
import t, { type Test } from 'tap'
import pino from 'pino'
import { BrokerError, type Broker, type OutgoingEvent, type PublishOutcome } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { SyncDelivery } from '../../src/delivery/publisher.js'
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

/**
 * A broker that says "not now" (as RabbitMQ nacks for a queue at its length limit) to events of
 * the types in `nack`, and gives no answer at all (a timeout) to the next `silent` calls.
 */
class Choosy implements Broker {
  readonly name = 'choosy'
  readonly nack = new Set<string>()
  silent = 0
  readonly published: string[] = []
  readonly tried = new Map<string, number>()
  async connect (): Promise<void> {}
  async health () { return { up: true } }
  async close (): Promise<void> {}
  async publish (events: readonly OutgoingEvent[]): Promise<PublishOutcome[]> {
    for (const e of events) this.tried.set(e.event.id, (this.tried.get(e.event.id) ?? 0) + 1)
    if (this.silent > 0) {
      this.silent--
      const error = new BrokerError('no answer within 100 ms', { retryable: true, reason: 'timeout' })
      return events.map(() => ({ ok: false, error }))
    }
    return events.map(e => {
      if (this.nack.has(e.event.type)) {
        return { ok: false, error: new BrokerError('RabbitMQ nacked the event', { retryable: true, reason: 'nack', answered: true }) }
      }
      this.published.push(e.event.id)
      return { ok: true }
    })
  }
}

async function relayOn (t: Test, broker: Choosy, options: { maxAttempts: number, batchSize: number }) {
  const store = new SqliteOutbox(dataDir(t))
  await store.connect()
  t.teardown(() => store.close())
  const metrics = createMetrics()
  const log = pino({ level: 'silent' })
  const delivery = new SyncDelivery({ name: 'rabbitmq', broker }, { maxAttempts: 1, baseMs: 1, maxMs: 1, timeoutMs: 2000 }, metrics, log)
  const policy = { owner: 'test', baseMs: 20, maxMs: 200, pollMs: 20, ...options }
  const relay = new Relay({ name: 'rabbitmq', broker, delivery }, store, policy, metrics, log)
  return { store, metrics, relay }
}

async function until (what: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await what()) return true
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return false
}

t.test('events the broker keeps nacking do not hold back the later ones: they wait on their own, counted', async t => {
  const broker = new Choosy()
  broker.nack.add('bounded')
  const { store, relay } = await relayOn(t, broker, { maxAttempts: 1000, batchSize: 10 })
  const at = Date.parse(EVENT_TIME)
  // Ten refused events at the head, a hundred others behind them.
  await store.append([...Array.from({ length: 10 }, (_, i) => toRow('rabbitmq', outgoing(`n${i}`, { type: 'bounded' }), at)),
    ...Array.from({ length: 100 }, (_, i) => toRow('rabbitmq', outgoing(`e${i}`), at))])
  relay.start()
  t.teardown(() => relay.stop())
  t.ok(await until(() => broker.published.length === 100), 'all hundred later events delivered while the ten are refused')
  t.same(broker.published, Array.from({ length: 100 }, (_, i) => `e${i}`), 'in order, each once')
  t.ok([...broker.tried].filter(([id]) => id.startsWith('e')).every(([, n]) => n === 1), 'none of them sent twice')
  // Deleted once published: the outbox's commit follows the broker's answer. (Not `next`: it leaves
  // out the events waiting their backoff.) Counting the nacks is the next test's.
  const depth = async () => (await store.stats()).find(s => s.destination === 'rabbitmq')?.depth
  t.ok(await until(async () => await depth() === 10), 'the hundred are gone from the outbox, the ten still wait')
  t.same(broker.published.filter(id => id.startsWith('n')), [], 'none of the ten published')
  t.ok([...broker.tried].filter(([id]) => id.startsWith('n')).every(([, n]) => n >= 1), 'each of the ten tried')
  broker.nack.clear()
  t.ok(await until(async () => await depth() === 0), 'delivered once the broker takes them')
  t.equal(broker.published.length, 110)
})

t.test('an event nacked OUTBOX_MAX_ATTEMPTS times is a dead letter; the others flow past it meanwhile', async t => {
  const broker = new Choosy()
  broker.nack.add('bounded')
  const { store, relay, metrics } = await relayOn(t, broker, { maxAttempts: 3, batchSize: 5 })
  const at = Date.parse(EVENT_TIME)
  await store.append([toRow('rabbitmq', outgoing('n0', { type: 'bounded' }), at),
    ...Array.from({ length: 20 }, (_, i) => toRow('rabbitmq', outgoing(`e${i}`), at))])
  relay.start()
  t.teardown(() => relay.stop())
  t.ok(await until(async () => (await store.deadLetters({ limit: 10 })).length === 1), 'buried')
  const [dead] = await store.deadLetters({ limit: 10 })
  t.match(dead, { eventId: 'n0', attempts: 2, reason: 'failed 3 attempts' })
  t.equal(broker.tried.get('n0'), 3, 'tried three times')
  t.ok(await until(() => broker.published.length === 20), 'the others delivered')
  // The count follows the outbox's commit, which the query above may see first.
  const outcomes = () => metrics.registry.getSingleMetricAsString('gateway_outbox_events_total')
  t.ok(await until(async () => /outcome="dead_lettered"\} 1$/m.test(await outcomes())), 'counted as dead-lettered')
})

t.test('an attempt the broker never answered (a timeout) counts nothing, buries nothing and keeps the order', async t => {
  const broker = new Choosy()
  broker.silent = 4
  // One attempt allowed: a single counted timeout would bury every event.
  const { store, relay } = await relayOn(t, broker, { maxAttempts: 1, batchSize: 10 })
  const at = Date.parse(EVENT_TIME)
  await store.append(Array.from({ length: 25 }, (_, i) => toRow('rabbitmq', outgoing(`e${i}`), at)))
  relay.start()
  t.teardown(() => relay.stop())
  t.ok(await until(() => broker.published.length === 25), 'every event delivered once the broker answers')
  t.equal(broker.silent, 0, 'after the unanswered attempts')
  t.same(broker.published, Array.from({ length: 25 }, (_, i) => `e${i}`), 'in accept order')
  t.same(await store.deadLetters({ limit: 10 }), [], 'no dead letters')
})
