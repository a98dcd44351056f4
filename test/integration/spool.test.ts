// Spool mode against the real RabbitMQ and PostgreSQL: a broker outage under load, a gateway
// killed with SIGKILL mid-load, two replicas sharing a PostgreSQL outbox with one of them killed,
// a bounded queue that rejects one type's events while the others flow.
// Every 202 must reach an independent consumer, in each tenant's accept order; duplicates
// (at-least-once) are counted and bounded.
import { randomUUID } from 'node:crypto'
import amqplib from 'amqplib'
import t, { type Test } from 'tap'
import { gateway } from '../attacks/gateway-process.js'
import { dataDir, exampleOf } from '../helper.js'
import { pgSchema, pgSkip } from '../postgres.js'
import { AMQP_URL, Consumer, cleanupExchange, rabbitmqctl, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

const BODY = JSON.stringify(exampleOf('call.ended'))

const skip = await rabbitSkip()
const skipPg = skip === false ? await pgSkip() : skip

/**
 * Tenants each sending one event at a time (so each tenant's accept order is defined) to the
 * gateways given, in turn, until stopped. Records every 202 id in order per tenant.
 */
class Load {
  readonly accepted = new Map<string, string[]>()
  readonly statuses = new Map<number, number>()
  #stop = false
  readonly #loops: Promise<void>[]

  constructor (bases: () => string[], tenants: number, pauseMs = 5) {
    this.#loops = Array.from({ length: tenants }, async () => {
      const tenant = randomUUID()
      const ids: string[] = []
      this.accepted.set(tenant, ids)
      for (let i = 0; !this.#stop; i++) {
        const targets = bases()
        const base = targets[i % targets.length] as string
        const status = await fetch(`${base}/v1/events/call.ended`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-tenant-id': tenant },
          body: BODY,
          signal: AbortSignal.timeout(10_000)
        })
          .then(async r => {
            const body = await r.json() as { id?: string, status?: string }
            if (r.status === 202) {
              if (body.status !== 'queued') throw new Error(`202 with status ${String(body.status)}`)
              ids.push(body.id as string)
            }
            return r.status
          }, () => 0)
        this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1)
        // A gateway that is gone (killed, restarting): try again shortly rather than spin.
        if (status === 0) await new Promise(resolve => setTimeout(resolve, 50))
        if (pauseMs > 0) await new Promise(resolve => setTimeout(resolve, pauseMs)) // a steady offered load, not a timing assertion
      }
    })
  }

  get count (): number {
    return [...this.accepted.values()].reduce((n, ids) => n + ids.length, 0)
  }

  async stop (): Promise<void> {
    this.#stop = true
    await Promise.all(this.#loops)
  }
}

/** Every accepted id arrived, each tenant's in accept order (first arrivals; repeats counted). */
function checkDelivery (t: Test, load: Load, consumer: Consumer, maxDuplicates: number): void {
  const seen = new Map<string, string[]>()
  const once = new Set<string>()
  let duplicates = 0
  for (const m of consumer.messages) {
    const id = m.properties.messageId as string
    if (once.has(id)) {
      duplicates++
      continue
    }
    once.add(id)
    const tenant = m.properties.headers?.['x-tenant-id'] as string
    seen.set(tenant, [...seen.get(tenant) ?? [], id])
  }
  const missing = [...load.accepted.values()].flat().filter(id => !once.has(id))
  t.equal(missing.length, 0, `every one of the ${load.count} events answered 202 reached the consumer`)
  // Events a killed gateway committed without answering arrive too (at least once): the order is
  // checked on the answered ones.
  const answered = new Set([...load.accepted.values()].flat())
  const unanswered = [...once].filter(id => !answered.has(id)).length
  for (const [tenant, ids] of load.accepted) {
    t.same((seen.get(tenant) ?? []).filter(id => answered.has(id)), ids, `tenant ${tenant.slice(0, 8)}: in accept order`)
  }
  if (unanswered > 0) t.comment(`${unanswered} events committed but not answered (the kill) arrived too`)
  t.comment(`${consumer.messages.length} messages for ${load.count} accepted events: ${duplicates} duplicates`)
  t.ok(duplicates <= maxDuplicates, `duplicates bounded (${duplicates} <= ${maxDuplicates})`)
}

/**
 * Whether every accepted event has arrived. Not a count: events a killed gateway committed but
 * could not answer arrive too, without being among the accepted.
 */
function received (consumer: Consumer, load: Load): boolean {
  const ids = new Set(consumer.messages.map(m => m.properties.messageId as string))
  return [...load.accepted.values()].every(list => list.every(id => ids.has(id)))
}

async function waitFor (what: string, check: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
  const until = Date.now() + ms
  while (!await check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100)) // polling an outside process
  }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

t.test('a 30 s RabbitMQ outage under load: every 202 is delivered after recovery, in order per tenant', { skip }, async t => {
  await takeRabbitMqTurn(t)
  const exchange = uniqueName('spool')
  cleanupExchange(t, exchange)
  t.teardown(() => rabbitmqctl('start_app').then(() => undefined, () => undefined))
  const gw = await gateway(t, {
    BROKER: 'rabbitmq', AMQP_EXCHANGE: exchange, DELIVERY_MODE: 'spool', RETRY_BASE_MS: '50', OUTBOX_RETRY_MAX_MS: '2000'
  })
  const consumer = await Consumer.bind(t, exchange)
  const load = new Load(() => [gw.base], 4)
  await waitFor('events before the outage', () => load.count >= 200)

  await rabbitmqctl('stop_app')
  const down = Date.now()
  await waitFor('readiness to see the broker down', async () => {
    type Readiness = { status: string, destinations: { up: boolean, outbox?: { depth: number } }[] }
    const ready = await fetch(`${gw.base}/health/ready`).then(async r => ({ status: r.status, body: await r.json() as Readiness }))
    return ready.status === 200 && ready.body.status === 'degraded' && ready.body.destinations[0]?.up === false
  })
  const acceptedBefore = load.count
  await sleep(30_000 - (Date.now() - down))
  const during = load.count - acceptedBefore
  t.ok(during > 100, `events kept being accepted while the broker was down (${during})`)
  type Outbox = { destinations: { depth: number, oldestAgeSeconds: number }[] }
  const outbox = await fetch(`${gw.base}/v1/admin/outbox`).then(r => r.json()) as Outbox
  t.ok((outbox.destinations[0]?.depth ?? 0) >= during, 'they wait in the outbox')
  t.ok((outbox.destinations[0]?.oldestAgeSeconds ?? 0) > 20, 'the oldest has waited through the outage')

  await rabbitmqctl('start_app')
  await sleep(3000)
  await load.stop()
  t.same([...load.statuses.keys()], [202], 'every request got 202, during the outage too')
  await consumer.reconnect()
  await consumer.start()
  await waitFor('the consumer to get every accepted event', () => received(consumer, load))
  checkDelivery(t, load, consumer, 200)
  await waitFor('the outbox to empty', async () => {
    const o = await fetch(`${gw.base}/v1/admin/outbox`).then(r => r.json()) as { destinations: { depth: number }[] }
    return o.destinations[0]?.depth === 0
  })
})

t.test('SIGKILL mid-load, then a restart on the same DATA_DIR: every 202 is delivered', { skip }, async t => {
  await takeRabbitMqTurn(t)
  const exchange = uniqueName('spool-kill')
  cleanupExchange(t, exchange)
  const env = { BROKER: 'rabbitmq', AMQP_EXCHANGE: exchange, DELIVERY_MODE: 'spool', DATA_DIR: dataDir(t) }
  let gw = await gateway(t, env)
  const consumer = await Consumer.bind(t, exchange)
  let current = gw.base
  const load = new Load(() => [current], 4, 0)
  await waitFor('events under load', () => load.count >= 1500)
  gw.child.kill('SIGKILL')
  await gw.exit
  const atKill = load.count
  gw = await gateway(t, env)
  current = gw.base
  await waitFor('events after the restart', () => load.count >= atKill + 200)
  await load.stop()
  t.same([...load.statuses.keys()].filter(s => s !== 0 && s !== 202), [], 'every answer was 202 (the others found no gateway)')
  await waitFor('the consumer to get every accepted event', () => received(consumer, load))
  checkDelivery(t, load, consumer, 200)
})

t.test('two replicas on one PostgreSQL outbox, one killed: the other delivers everything', { skip: skipPg }, async t => {
  await takeRabbitMqTurn(t)
  const exchange = uniqueName('spool-pg')
  cleanupExchange(t, exchange)
  const { url } = await pgSchema(t, 'evg_spool')
  const env = {
    BROKER: 'rabbitmq', AMQP_EXCHANGE: exchange, DELIVERY_MODE: 'spool', SPOOL_URL: url, OUTBOX_LEASE_MS: '3000', PUBLISH_TIMEOUT_MS: '1000'
  }
  const a = await gateway(t, env)
  const b = await gateway(t, env)
  const consumer = await Consumer.bind(t, exchange)
  let bases = [a.base, b.base]
  // Each tenant alternates between the replicas: its events are accepted by both.
  const load = new Load(() => bases, 6, 2)
  await waitFor('events on both replicas', () => load.count >= 1000)
  a.child.kill('SIGKILL')
  await a.exit
  bases = [b.base]
  const atKill = load.count
  await waitFor('events after the kill', () => load.count >= atKill + 300)
  await load.stop()
  await waitFor('the consumer to get every accepted event', () => received(consumer, load))
  checkDelivery(t, load, consumer, 200)
  const outbox = await fetch(`${b.base}/v1/admin/outbox`).then(r => r.json()) as { store: string, destinations: { depth: number }[] }
  t.equal(outbox.store, 'postgres')
  await waitFor('the shared outbox to empty', async () => {
    const o = await fetch(`${b.base}/v1/admin/outbox`).then(r => r.json()) as { destinations: { depth: number }[] }
    return o.destinations[0]?.depth === 0
  })
})

t.test('a bounded queue that rejects one type (reject-publish): every other event flows past the refused ones', { skip }, async t => {
  await takeRabbitMqTurn(t)
  const exchange = uniqueName('spool-bounded')
  cleanupExchange(t, exchange)
  const gw = await gateway(t, {
    BROKER: 'rabbitmq',
    AMQP_EXCHANGE: exchange,
    DELIVERY_MODE: 'spool',
    OUTBOX_BATCH_SIZE: '10',
    RETRY_MAX_ATTEMPTS: '1',
    OUTBOX_MAX_ATTEMPTS: '1000'
  })
  const all = await Consumer.bind(t, exchange)
  // A consumer's queue for one type, full: RabbitMQ nacks every call.started the exchange routes to it.
  const conn = await amqplib.connect(AMQP_URL)
  t.teardown(() => conn.close().catch(() => undefined))
  const ch = await conn.createChannel()
  const bounded = uniqueName('bounded')
  await ch.assertQueue(bounded, { durable: true, arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' } })
  t.teardown(() => ch.deleteQueue(bounded).then(() => undefined, () => undefined))
  await ch.bindQueue(bounded, exchange, 'comms.call.started')

  const post = async (type: string) => {
    const r = await fetch(`${gw.base}/v1/events/${type}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-id': randomUUID() },
      body: JSON.stringify(exampleOf(type))
    })
    t.equal(r.status, 202)
    return (await r.json() as { id: string }).id
  }
  // The refused ones first, at the head of the outbox.
  const refused: string[] = []
  for (let i = 0; i < 10; i++) refused.push(await post('call.started'))
  const later: string[] = []
  for (let i = 0; i < 100; i++) later.push(await post('call.ended'))
  await all.waitForIds(later, 15_000)
  const arrived = all.messages.map(m => m.properties.messageId as string)
  t.same(later.filter(id => !arrived.includes(id)), [], 'the 100 later events delivered within 15 s while the 10 are refused')
  t.equal(arrived.filter(id => later.includes(id)).length, 100, 'each of them once')
  type Outbox = { destinations: { depth: number }[] }
  const waiting = await fetch(`${gw.base}/v1/admin/outbox`).then(r => r.json()) as Outbox
  t.equal(waiting.destinations[0]?.depth, 10, 'the refused ones still wait in the outbox, not dead letters')

  // Room in the bounded queue: they go.
  await ch.deleteQueue(bounded)
  await all.waitForIds(refused, 30_000)
  const now = new Set(all.messages.map(m => m.properties.messageId as string))
  t.same(refused.filter(id => !now.has(id)), [], 'delivered once the queue takes them')
  const copies = all.messages.filter(m => refused.includes(m.properties.messageId as string)).length
  // A nacked event that another queue took is there again after each retry (docs/delivery-modes.md says when).
  t.comment(`${copies} copies of the 10 refused events reached the other queue`)
})
