import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import pino from 'pino'
import { BrokerError, type Broker, type OutgoingEvent, type PublishOutcome } from '../../src/brokers/broker.js'
import { SyncDelivery } from '../../src/delivery/publisher.js'
import { backoffMs } from '../../src/delivery/retry.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { outgoing } from '../helper.js'

const policy = { maxAttempts: 4, baseMs: 1, maxMs: 4, timeoutMs: 1000 }
const event = (id: string): OutgoingEvent => outgoing(id, { type: 'call.ended' })
const retryable = new BrokerError('busy', { retryable: true, reason: 'throttled' })
const fatal = new BrokerError('denied', { retryable: false, reason: 'access_denied' })

/** A broker that answers from a script: one array of outcomes per call, by event id. */
function scripted (script: Record<string, (PublishOutcome | 'ok')[]>) {
  const seen: string[][] = []
  const broker: Broker = {
    name: 'scripted',
    connect: async () => {},
    health: async () => ({ up: true }),
    close: async () => {},
    publish: async events => {
      seen.push(events.map(e => e.event.id))
      return events.map(e => {
        const next = script[e.event.id]?.shift() ?? 'ok'
        return next === 'ok' ? { ok: true } : next
      })
    }
  }
  return { broker, seen }
}

t.test('only the failed retryable events are retried, in one call each round', async t => {
  const { broker, seen } = scripted({
    b: [{ ok: false, error: retryable }, { ok: false, error: retryable }],
    c: [{ ok: false, error: fatal }]
  })
  const metrics = createMetrics()
  const delivery = new SyncDelivery({ name: 'orders', broker }, policy, metrics, pino({ level: 'silent' }))
  const results = await delivery.publish([event('a'), event('b'), event('c')])
  t.same(seen, [['a', 'b', 'c'], ['b'], ['b']])
  t.same(results.map(r => r.ok), [true, true, false])
  t.match(results[2], { ok: false, error: { code: 'EVG_BROKER_REJECTED' } })
  const text = await metrics.registry.metrics()
  t.match(text, /gateway_publish_retries_total\{destination="orders",broker="scripted"\} 2/)
  t.match(text, /gateway_events_published_total\{destination="orders",broker="scripted",type="call.ended",outcome="published"\} 2/)
  t.match(text, /gateway_events_published_total\{destination="orders",broker="scripted",type="call.ended",outcome="rejected"\} 1/)
  // One duration sample per event, with the same outcome vocabulary as the counter.
  t.match(text, /gateway_publish_duration_seconds_count\{destination="orders",broker="scripted",type="call.ended",outcome="published"\} 2/)
  t.match(text, /gateway_publish_duration_seconds_count\{destination="orders",broker="scripted",type="call.ended",outcome="rejected"\} 1/)
})

t.test('each event\'s publish duration ends when its broker took it, not when the last retry of another did', async t => {
  const { broker, seen } = scripted({ b: [{ ok: false, error: retryable }] })
  const slowRetry: Broker = {
    ...broker,
    publish: async events => seen.length === 0 ? broker.publish(events) : sleep(300).then(() => broker.publish(events))
  }
  const metrics = createMetrics()
  await new SyncDelivery(
    { name: 'orders', broker: slowRetry },
    policy,
    metrics,
    pino({ level: 'silent' })
  ).publish([event('a'), event('b')])
  t.same(seen, [['a', 'b'], ['b']])
  const text = await metrics.registry.metrics()
  const labels = 'destination="orders",broker="scripted",type="call.ended",outcome="published"'
  const bucket = (le: string) => text.match(new RegExp(`gateway_publish_duration_seconds_bucket\\{le="${le}",${labels}\\} (\\d+)`))?.[1]
  t.equal(bucket('0.25'), '1', 'a, taken in the first call, is not charged the 300 ms retry of b')
  t.equal(bucket('\\+Inf'), '2')
})

t.test('attempts are bounded by RETRY_MAX_ATTEMPTS; then EVG_BROKER_UNAVAILABLE with Retry-After', async t => {
  const { broker, seen } = scripted({ a: Array(10).fill({ ok: false, error: retryable }) })
  const delivery = new SyncDelivery({ name: 'orders', broker }, policy, createMetrics(), pino({ level: 'silent' }))
  const [result] = await delivery.publish([event('a')])
  t.equal(seen.length, 4)
  t.match(result, { ok: false, error: { code: 'EVG_BROKER_UNAVAILABLE', retryAfter: 1, extensions: { reason: 'throttled' } } })
})

t.test('a throwing adapter fails its events retryably instead of crashing', async t => {
  let calls = 0
  const broker: Broker = {
    name: 'throws',
    connect: async () => {},
    health: async () => ({ up: true }),
    close: async () => {},
    publish: async () => { calls++; throw new Error('socket closed') }
  }
  const delivery = new SyncDelivery({ name: 'throws', broker }, { ...policy, maxAttempts: 2 }, createMetrics(), pino({ level: 'silent' }))
  const [result] = await delivery.publish([event('a')])
  t.equal(calls, 2)
  t.match(result, { ok: false, error: { code: 'EVG_BROKER_UNAVAILABLE' } })
})

t.test('full jitter: waits stay within [0, min(max, base * 2^(n-1)))', async t => {
  const p = { maxAttempts: 10, baseMs: 100, maxMs: 2000, timeoutMs: 5000 }
  t.equal(backoffMs(1, p, () => 0.999), 99)
  t.equal(backoffMs(3, p, () => 0.5), 200)
  t.equal(backoffMs(10, p, () => 0.999), 1998)
  t.equal(backoffMs(4, p, () => 0), 0)
})
