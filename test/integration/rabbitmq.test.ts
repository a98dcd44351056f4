import { join } from 'node:path'
import t, { type Test } from 'tap'
import amqplib from 'amqplib'
import { buildApp } from '../../src/app.js'
import { BUILTIN_ENTRIES, routingKeyFor } from '../../src/catalog/index.js'
import { TENANT, exampleOf, post, runTs, testConfig } from '../helper.js'
import { AMQP_URL, cleanupExchange, Consumer, rabbitmqctl, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'
import { baseUrl, startSqs, writeJson } from './cli-helper.js'

// Everything that touches RabbitMQ is in this one file, so the outage and alarm tests never
// run beside another test that needs the broker (tap runs files in parallel).
const skip = await rabbitSkip()
if (skip === false) await takeRabbitMqTurn(t)

async function gateway (t: Test, env: Record<string, string> = {}) {
  const exchange = env.AMQP_EXCHANGE ?? uniqueName('exchange')
  cleanupExchange(t, exchange)
  const app = await buildApp(testConfig(t, {
    BROKER: 'rabbitmq', AMQP_URL, AMQP_EXCHANGE: exchange, PUBLISH_TIMEOUT_MS: '2000', RETRY_BASE_MS: '20', RETRY_MAX_MS: '200', ...env
  }))
  t.teardown(() => app.close())
  await app.ready()
  return { app, exchange }
}

t.test('every catalog type arrives with its routing key, properties and envelope', { skip }, async t => {
  const { app, exchange } = await gateway(t)
  const consumer = await Consumer.bind(t, exchange)
  const sent = new Map<string, { type: string, data: Record<string, unknown> }>()
  for (const entry of BUILTIN_ENTRIES) {
    const data = exampleOf(entry.type)
    const res = await app.inject(post(entry.type, data, {
      'x-user-id': 'user-9', 'x-correlation-id': 'corr-rmq', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    }))
    t.equal(res.statusCode, 202, entry.type)
    sent.set(res.json().id, { type: entry.type, data })
  }
  await consumer.waitFor(BUILTIN_ENTRIES.length)
  t.equal(consumer.messages.length, BUILTIN_ENTRIES.length)
  for (const msg of consumer.messages) {
    const envelope = JSON.parse(msg.content.toString())
    const expected = sent.get(envelope.id)
    t.ok(expected, `message ${envelope.id} was one we published`)
    if (!expected) continue
    const entry = BUILTIN_ENTRIES.find(e => e.type === expected.type)!
    t.equal(msg.fields.routingKey, routingKeyFor(entry, expected.data), `${expected.type} routing key`)
    t.match(msg.properties, {
      contentType: 'application/cloudevents+json',
      messageId: envelope.id,
      correlationId: 'corr-rmq',
      deliveryMode: 2,
      type: expected.type,
      appId: 'event-gateway',
      timestamp: Number,
      headers: {
        'x-event-type': expected.type, 'x-tenant-id': TENANT, 'x-user-id': 'user-9', 'x-correlation-id': 'corr-rmq', traceparent: /^00-4bf9/
      }
    })
    t.match(envelope, { specversion: '1.0', type: expected.type, tenantid: TENANT, userid: 'user-9', data: expected.data })
  }
  t.equal(consumer.messages.find(m => m.properties.type === 'call.ended')?.fields.routingKey, 'comms.call.ended')
  t.equal(consumer.messages.find(m => m.properties.type === 'domain.event')?.fields.routingKey, 'domain.user.user_created')
  t.equal(consumer.messages.find(m => m.properties.type === 'speaker.onboarded')?.fields.routingKey, 'speaker.onboarded')
})

// The broker refills one properties object per message (message.ts): no message may carry
// another's headers, whether sent one by one or many in one publish.
t.test(
  'each message carries its own headers: optional ones absent when not sent, a batch\'s events their own type and id',
  { skip },
  async t => {
    const { app, exchange } = await gateway(t)
    const consumer = await Consumer.bind(t, exchange)
    const full = await app.inject(post('call.ended', exampleOf('call.ended'), {
      'x-user-id': 'user-1',
      'x-account-id': 'acct-1',
      'x-correlation-id': 'corr-1',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    }))
    const bare = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-correlation-id': 'corr-2' }))
    const types = ['call.ended', 'speaker.onboarded', 'call.ended', 'domain.event']
    t.ok(types.every(type => BUILTIN_ENTRIES.some(e => e.type === type)) && new Set(types).size > 1, 'the batch mixes types of the catalog')
    const batch = await app.inject({
      method: 'POST',
      url: '/v1/events',
      headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, 'x-user-id': 'user-3' },
      payload: JSON.stringify({ events: types.map(type => ({ type, data: exampleOf(type) })) })
    })
    t.equal(full.statusCode, 202)
    t.equal(bare.statusCode, 202)
    t.equal(batch.statusCode, 202, batch.body)
    await consumer.waitFor(2 + types.length)
    const byId = new Map(consumer.messages.map(m => [m.properties.messageId as string, m]))
    const first = byId.get(full.json().id)
    const second = byId.get(bare.json().id)
    t.same(first?.properties.headers, {
      'x-event-type': 'call.ended',
      'x-tenant-id': TENANT,
      'x-correlation-id': 'corr-1',
      'x-user-id': 'user-1',
      'x-account-id': 'acct-1',
      traceparent: first?.properties.headers?.traceparent
    }, 'every header of the first')
    t.match(first?.properties.headers?.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-/)
    t.same(
      second?.properties.headers,
      { 'x-event-type': 'call.ended', 'x-tenant-id': TENANT, 'x-correlation-id': 'corr-2' },
      'the second has no user, account or traceparent of the first'
    )
    t.equal(second?.properties.correlationId, 'corr-2')
    const results = (batch.json() as { results: { id: string, type: string }[] }).results
    t.equal(results.length, types.length)
    for (const r of results) {
      const m = byId.get(r.id)
      t.equal(m?.properties.type, r.type, `${r.id}: its own type`)
      t.equal(m?.properties.headers?.['x-event-type'], r.type, `${r.id}: its own x-event-type`)
      t.equal(m?.properties.headers?.['x-user-id'], 'user-3')
      t.equal(JSON.parse(m?.content.toString() ?? '{}').id, r.id, `${r.id}: its messageId is its envelope's id`)
    }
  }
)

// Many tenants at once, single and batch requests interleaved, optional headers on some: every
// message's AMQP headers and properties must be those of the envelope it carries. A tenant's
// id in another tenant's message is a leak, wherever it comes from.
t.test('concurrent requests from many tenants: each message\'s headers match its own envelope', { skip }, async t => {
  const { app, exchange } = await gateway(t)
  const consumer = await Consumer.bind(t, exchange)
  const tenant = (i: number) => `7c9e6679-7425-40de-944b-${String(100000000000 + i)}`
  const optional = (i: number) => ({
    ...(i % 2 === 0 ? { 'x-user-id': `user-${i}` } : {}),
    ...(i % 3 === 0 ? { 'x-account-id': `acct-${i}` } : {}),
    ...(i % 5 === 0 ? { traceparent: `00-${String(i).padStart(32, '0')}-00f067aa0ba902b7-01` } : {})
  })
  const singles = Array.from({ length: 150 }, (_, i) => app.inject(post('call.ended', exampleOf('call.ended'), {
    'x-tenant-id': tenant(i), 'x-correlation-id': `corr-${i}`, ...optional(i)
  })))
  const mixed = ['call.ended', 'speaker.onboarded', 'domain.event'].flatMap(type => [type, type])
  const batches = Array.from({ length: 10 }, (_, b) => app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': tenant(1000 + b), 'x-correlation-id': `corr-b${b}`, ...optional(b) },
    payload: JSON.stringify({ events: mixed.map(type => ({ type, data: exampleOf(type) })) })
  }))
  const answers = await Promise.all([...singles, ...batches])
  t.same(answers.map(a => a.statusCode).filter(s => s !== 202), [], 'every request taken')
  const expected = 150 + 10 * 6
  await consumer.waitFor(expected)
  t.equal(consumer.messages.length, expected)
  let mismatched = 0
  for (const m of consumer.messages) {
    const e = JSON.parse(m.content.toString()) as Record<string, string>
    const h = m.properties.headers ?? {}
    const own = h['x-tenant-id'] === e.tenantid && h['x-correlation-id'] === e.correlationid && h['x-event-type'] === e.type &&
      h['x-user-id'] === e.userid && h['x-account-id'] === e.accountid && h.traceparent === e.traceparent &&
      m.properties.messageId === e.id && m.properties.type === e.type && m.properties.correlationId === e.correlationid
    if (!own) {
      mismatched++
      const envelope = { tenantid: e.tenantid, userid: e.userid, accountid: e.accountid, traceparent: e.traceparent }
      t.fail(`message ${e.id}: headers ${JSON.stringify(h)} against envelope ${JSON.stringify(envelope)}`)
    }
  }
  t.equal(mismatched, 0, 'no message carries another event\'s tenant, user, account, trace or ids')
  t.equal(new Set(consumer.messages.map(m => m.properties.headers?.['x-tenant-id'])).size, 160, 'one tenant per request')
})

t.test('unroutable events are kept by the alternate exchange and counted', { skip }, async t => {
  const { app, exchange } = await gateway(t)
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 202, 'kept: the broker has it on disk')
  const conn = await amqplib.connect(AMQP_URL)
  t.teardown(() => conn.close())
  const ch = await conn.createChannel()
  const kept = await ch.get(`${exchange}.unrouted`)
  t.ok(kept, 'the event is in the alternate exchange queue')
  if (kept) {
    t.equal(JSON.parse(kept.content.toString()).id, res.json().id)
    t.equal(kept.fields.routingKey, 'comms.call.ended', 'with its original routing key')
    ch.nack(kept, false, true)
  }
  const metrics = (await app.inject('/metrics')).body
  t.match(metrics, /gateway_unrouted_events\{destination="rabbitmq",broker="rabbitmq"\} 1/)
})

t.test('without an alternate exchange, an unroutable event is refused with 502, not lost silently', { skip }, async t => {
  const { app } = await gateway(t, { AMQP_ALTERNATE_EXCHANGE: '' })
  const res = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(res.statusCode, 502)
  t.match(res.json(), { code: 'EVG_BROKER_REJECTED', reason: 'unroutable' })
  t.match(
    (await app.inject('/metrics')).body,
    /gateway_publish_failures_total\{destination="rabbitmq",broker="rabbitmq",reason="unroutable"\} 1/
  )
})

t.test('an exchange declared elsewhere without our alternate exchange is used as it is', { skip }, async t => {
  const exchange = uniqueName('foreign')
  const conn = await amqplib.connect(AMQP_URL)
  t.teardown(() => conn.close())
  const ch = await conn.createChannel()
  await ch.assertExchange(exchange, 'topic', { durable: true })
  const { app } = await gateway(t, { AMQP_EXCHANGE: exchange })
  const consumer = await Consumer.bind(t, exchange, 'comms.#')
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
  await consumer.waitFor(1)
  t.equal((await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))).statusCode, 502, 'unroutable there is refused')
})

t.test(
  'broker restart mid-stream: no acknowledged event is lost and the gateway recovers by itself',
  { skip, timeout: 180000 },
  async t => {
    const { app, exchange } = await gateway(t, { PUBLISH_TIMEOUT_MS: '1000' })
    const consumer = await Consumer.bind(t, exchange, '#', { consume: false })
    const acknowledged: string[] = []
    const answers: { status: number, reason?: string }[] = []
    const publish = async () => {
      const res = await app.inject(post('call.ended', exampleOf('call.ended')))
      answers.push({ status: res.statusCode, reason: res.json().reason })
      if (res.statusCode === 202) acknowledged.push(res.json().id)
      else t.equal(res.statusCode, 503, 'anything but 202 is a 503')
    }
    const stream = async (count: number) => {
      for (let i = 0; i < count; i++) await Promise.all([publish(), publish(), publish(), publish()])
    }

    await stream(25)
    t.equal(acknowledged.length, 100, 'all accepted while up')
    // keep publishing, four at a time, until the broker application has stopped
    let stopped = false
    const stopping = rabbitmqctl('stop_app').then(() => { stopped = true })
    // eslint-disable-next-line no-unmodified-loop-condition -- set when rabbitmqctl returns
    while (!stopped) await stream(1)
    await stopping
    t.ok(answers.some(a => a.status === 503), 'the stream met the outage')
    const ready = await app.inject('/health/ready')
    t.equal(ready.statusCode, 503, '/health/ready is 503 while down')
    t.match((await app.inject('/metrics')).body, /gateway_broker_up\{destination="rabbitmq",broker="rabbitmq"\} 0/)
    const whileDown = await app.inject(post('call.ended', exampleOf('call.ended')))
    t.equal(whileDown.statusCode, 503)
    t.match(
      whileDown.json(),
      { code: 'EVG_BROKER_UNAVAILABLE', reason: 'disconnected' },
      'answered at once from the known state, not a timeout'
    )
    t.ok(Number(whileDown.headers['retry-after']) >= 1, 'with Retry-After')

    await rabbitmqctl('start_app')
    const restarted = Date.now()
    while ((await app.inject('/health/ready')).statusCode !== 200) await new Promise(resolve => setTimeout(resolve, 50))
    t.comment(`ready again ${Date.now() - restarted} ms after start_app returned`)
    t.match((await app.inject('/metrics')).body, /gateway_broker_up\{destination="rabbitmq",broker="rabbitmq"\} 1/)
    const before = acknowledged.length
    await stream(25)
    t.equal(acknowledged.length - before, 100, 'all accepted after recovery')

    await consumer.reconnect()
    await consumer.start()
    await consumer.waitForIds(acknowledged)
    const received = new Set(consumer.messages.map(m => m.properties.messageId as string))
    const lost = acknowledged.filter(id => !received.has(id))
    t.same(lost, [], `every one of the ${acknowledged.length} acknowledged events is in the queue`)
    const ids = consumer.messages.map(m => m.properties.messageId as string)
    t.equal(new Set(ids).size, ids.length, 'no event is in the queue twice')
    const accepted = new Set(acknowledged)
    const unconfirmed = ids.filter(id => !accepted.has(id)).length
    t.comment(`${unconfirmed} events answered 503 reached the queue as well (the broker had them, no confirm came back)`)
    const reasons = [...new Set(answers.filter(a => a.reason).map(a => a.reason))]
    t.comment(`answers during the outage: ${answers.filter(a => a.status === 503).length} × 503 (${reasons.join(', ')})`)
  }
)

t.test('a memory alarm gives fast 503s while it lasts, and publishing resumes after', { skip, timeout: 120000 }, async t => {
  const { app, exchange } = await gateway(t, { PUBLISH_TIMEOUT_MS: '30000' })
  await Consumer.bind(t, exchange)
  const watermark = /Memory high watermark setting: ([\d.]+) of available memory/.exec(await rabbitmqctl('status'))?.[1] ?? '0.4'
  t.teardown(() => rabbitmqctl('set_vm_memory_high_watermark', watermark))
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)

  await rabbitmqctl('set_vm_memory_high_watermark', '0.0000001')
  // The first publish meets the alarm: RabbitMQ blocks the connection and says so; the
  // gateway then answers it, and every publish after it, with 503 instead of waiting 30 s.
  const first = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(first.statusCode, 503)
  t.match(first.json(), { code: 'EVG_BROKER_UNAVAILABLE', reason: 'blocked' })
  const next = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.match(next.json(), { code: 'EVG_BROKER_UNAVAILABLE', reason: 'blocked' })
  t.equal((await app.inject('/health/ready')).statusCode, 503)

  await rabbitmqctl('set_vm_memory_high_watermark', watermark)
  while ((await app.inject('/health/ready')).statusCode !== 200) await new Promise(resolve => setTimeout(resolve, 50))
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202, 'publishing resumes')
})

const cli = (script: string, args: string[], env: Record<string, string>) => runTs(`src/cli/${script}.ts`, args, env)

t.test('npm run provision declares the topology idempotently, with queues bound per domain', { skip }, async t => {
  const exchange = uniqueName('prov')
  const queue = uniqueName('speakers')
  const dir = t.testdir({ 'queues.json': JSON.stringify({ queues: [{ name: queue, bindings: ['speaker.*'] }] }) })
  const env = { BROKER: 'rabbitmq', AMQP_URL, AMQP_EXCHANGE: exchange }
  t.teardown(async () => {
    const conn = await amqplib.connect(AMQP_URL)
    const ch = await conn.createChannel()
    for (const q of [queue, `${exchange}.unrouted`, `${exchange}.dead`]) await ch.deleteQueue(q).catch(() => undefined)
    for (const x of [exchange, `${exchange}.unrouted`, `${exchange}.dlx`]) await ch.deleteExchange(x).catch(() => undefined)
    await conn.close()
  })
  const first = cli('provision', ['--queues', join(dir, 'queues.json')], env)
  t.equal(await first.exit, 0)
  t.match(first.out.stdout, /RabbitMQ amqp:\/\/guest:\*\*\*@/, 'the password is not printed')
  t.match(first.out.stdout, new RegExp(`exchange ${exchange.replace(/\./g, '\\.')} \\(topic, durable, alternate-exchange .*created`))
  t.match(first.out.stdout, /Done: 6 created, 0 already in place/)
  const second = cli('provision', ['--queues', join(dir, 'queues.json')], env)
  t.equal(await second.exit, 0)
  t.match(second.out.stdout, /Nothing to change: all 6 already in place/)

  const { app } = await gateway(t, { AMQP_EXCHANGE: exchange })
  const res = await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))
  t.equal(res.statusCode, 202)
  const conn = await amqplib.connect(AMQP_URL)
  t.teardown(() => conn.close())
  const msg = await (await conn.createChannel()).get(queue, { noAck: true })
  t.equal(msg && JSON.parse(msg.content.toString()).id, res.json().id, 'the provisioned queue receives its domain')

  const bad = cli('provision', ['--queues', join(dir, 'missing.json')], env)
  t.equal(await bad.exit, 1)
  t.match(bad.out.stderr, /--queues: cannot read/)
})

/** Deletes what provision declares for these exchanges and queues when the test ends. */
function cleanupProvisioned (t: Test, exchanges: string[], queues: string[]): void {
  t.teardown(async () => {
    const conn = await amqplib.connect(AMQP_URL)
    const ch = await conn.createChannel()
    for (const q of [...queues, ...exchanges.flatMap(x => [`${x}.unrouted`, `${x}.dead`])]) await ch.deleteQueue(q).catch(() => undefined)
    for (const x of exchanges.flatMap(x => [x, `${x}.unrouted`, `${x}.dlx`])) await ch.deleteExchange(x).catch(() => undefined)
    await conn.close()
  })
}

const escape = (name: string) => name.replace(/\./g, '\\.')

t.test(
  'npm run provision per destination: each exchange of a routes file, its queues, an SQS queue; --destination selects',
  { skip },
  async t => {
    const sqs = await startSqs(t)
    const [ocelot, drafts, calls, speakers] = [uniqueName('ocelot'), uniqueName('drafts'), uniqueName('calls'), uniqueName('speakers')]
    cleanupProvisioned(t, [ocelot, drafts], [calls, speakers])
    const ROUTES_FILE = writeJson(t, 'routes.json', {
      destinations: {
        ocelot: { broker: 'rabbitmq', url: AMQP_URL, exchange: ocelot, envelope: 'ocelot', source: 'communications', module: 'cc-lite' },
        'draft-genie': { broker: 'rabbitmq', url: AMQP_URL, exchange: drafts, envelope: 'draft-genie' },
        surveys: { broker: 'sqs', queueUrl: `${sqs.fauxqs.address}/000000000000/evg-prov-surveys`, endpoint: sqs.fauxqs.address }
      },
      routes: [{ types: ['speaker.*'], to: ['draft-genie'] }, { types: ['survey.*'], to: ['surveys'] }, { types: ['*'], to: ['ocelot'] }]
    })
    const queues = writeJson(t, 'queues.json', {
      queues: [
        { name: calls, destination: 'ocelot', bindings: ['comms.call.ended'], deadLetter: true },
        { name: speakers, destination: 'draft-genie', bindings: ['speaker.*'] }
      ]
    })
    const env = { ROUTES_FILE, ...sqs.env }
    // Ocelot's exchange already exists, declared by its own services without our alternate exchange.
    const pre = await amqplib.connect(AMQP_URL)
    await (await pre.createChannel()).assertExchange(ocelot, 'topic', { durable: true })
    await pre.close()

    const one = cli('provision', ['--destination', 'draft-genie', '--queues', queues], env)
    t.equal(await one.exit, 0, one.out.stderr)
    t.match(one.out.stdout, new RegExp(`^Destination draft-genie: RabbitMQ amqp://guest:\\*\\*\\*@[^\\n]*, exchange ${escape(drafts)}\n`))
    // Declared as its consumers declare it (durable, no arguments): their own declaration passes.
    t.match(one.out.stdout, new RegExp(`queue ${escape(speakers)} \\(durable\\) bound with speaker\\.\\*\\s+created`))
    t.notMatch(one.out.stdout, ocelot, 'nothing of the destination not named')
    t.match(one.out.stdout, /Done: 6 created, 0 already in place/)

    const all = cli('provision', ['--queues', queues], env)
    t.equal(await all.exit, 0, all.out.stderr)
    const ocelotLines = new RegExp(
      'Destination ocelot: [^\\n]*\n(  .*created\n){2}' +
      `  exchange ${escape(ocelot)} \\(topic, declared elsewhere; used as it is\\)\\s+exists\n(  .*created\n){2}` +
      `  queue ${escape(calls)} \\(durable, dead letters to ${escape(ocelot)}\\.dlx\\) bound with comms\\.call\\.ended\\s+created\n`
    )
    t.match(all.out.stdout, ocelotLines, 'a queue the file asks to dead-letter does')
    const otherArguments = new RegExp(`warning: exchange '${escape(ocelot)}' exists with other arguments`)
    t.match(all.out.stderr, otherArguments, 'used as the gateway uses it, and said so')
    t.match(all.out.stdout, /Destination draft-genie: [^\n]*\n( {2}.*exists\n){6}Destination surveys/)
    t.match(all.out.stdout, /Destination surveys: SQS queue [^\n]*\n {2}queue evg-prov-surveys-dlq\s+created/)
    t.match(all.out.stdout, /Done: 8 created, 7 already in place/, 'counted over every destination')

    // The seed consumers' own declaration of their queue, after provisioning: accepted as it is.
    const consumerSide = await amqplib.connect(AMQP_URL)
    const consumerChannel = await consumerSide.createChannel()
    await t.resolves(consumerChannel.assertQueue(speakers, { durable: true }), 'a consumer declaring its queue plain still starts')
    await consumerSide.close()
    // A queue the file asks to dead-letter that a consumer already declared plain: said how to fix it.
    const plainFirst = writeJson(t, 'plain-first.json', {
      queues: [{ name: speakers, destination: 'draft-genie', bindings: ['speaker.*'], deadLetter: true }]
    })
    const refused = cli('provision', ['--destination', 'draft-genie', '--queues', plainFirst], env)
    t.equal(await refused.exit, 3)
    t.match(refused.out.stderr, new RegExp(
      `queue ${escape(speakers)} exists with other arguments than x-dead-letter-exchange ${escape(drafts)}\\.dlx; ` +
      'RabbitMQ does not change a queue\'s arguments: give it the dead-letter exchange with a policy instead'
    ))

    // The gateway with the same routes file: each queue gets its destination's events, in its envelope.
    const app = await buildApp(testConfig(t, { ROUTES_FILE }))
    t.teardown(() => app.close())
    await app.ready()
    const call = await app.inject(post('call.ended', exampleOf('call.ended')))
    const speaker = await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))
    t.equal(call.statusCode, 202)
    t.equal(speaker.statusCode, 202)
    const conn = await amqplib.connect(AMQP_URL)
    t.teardown(() => conn.close())
    const ch = await conn.createChannel()
    const inCalls = await ch.get(calls, { noAck: true })
    const inSpeakers = await ch.get(speakers, { noAck: true })
    t.match(
      inCalls && JSON.parse(inCalls.content.toString()),
      { id: call.json().id, organizationId: TENANT, metadata: { module: 'cc-lite' } }
    )
    t.match(inSpeakers && JSON.parse(inSpeakers.content.toString()), { eventId: speaker.json().id, eventType: 'speaker.onboarded' })
  }
)

t.test('npm run tail --destination: what an ocelot destination receives, transcripts masked in data', { skip }, async t => {
  const [ocelot, drafts] = [uniqueName('ocelot'), uniqueName('drafts')]
  cleanupExchange(t, ocelot)
  cleanupExchange(t, drafts)
  const ROUTES_FILE = writeJson(t, 'routes.json', {
    destinations: {
      ocelot: { broker: 'rabbitmq', url: AMQP_URL, exchange: ocelot, envelope: 'ocelot', source: 'communications', module: 'cc-lite' },
      'draft-genie': { broker: 'rabbitmq', url: AMQP_URL, exchange: drafts, envelope: 'draft-genie' }
    },
    routes: [{ types: ['speaker.*'], to: ['draft-genie'] }, { types: ['*'], to: ['ocelot'] }]
  })
  const app = await buildApp(testConfig(t, { ROUTES_FILE }))
  t.teardown(() => app.close())
  await app.ready()
  const tail = cli('tail', ['--destination', 'ocelot', '--binding', '#', '--count', '1'], { ROUTES_FILE })
  t.teardown(() => { tail.child.kill() })
  await tail.printed('stderr', 'tail: destination ocelot')
  await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))
  const res = await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: 'TOP-SECRET words' }))
  t.equal(await tail.exit, 0, 'exits after --count messages')
  const lines = tail.out.stdout.trim().split('\n').map(l => JSON.parse(l))
  t.equal(lines.length, 1, 'only what reaches the ocelot exchange')
  t.match(lines[0], {
    routingKey: 'comms.call.ended',
    id: res.json().id,
    type: 'call.ended',
    organizationId: TENANT,
    data: { transcript: '[redacted]', outcome: 'callback_requested' }
  })
  t.notMatch(tail.out.stdout, 'TOP-SECRET')
})

t.test(
  'npm run verify per destination: RabbitMQ with draft-genie envelopes (tenant from x-tenant-id), SQS and the local store',
  { skip },
  async t => {
    const sqs = await startSqs(t)
    const exchange = uniqueName('verify')
    cleanupExchange(t, exchange)
    const routes = {
      destinations: {
        'draft-genie': { broker: 'rabbitmq', url: AMQP_URL, exchange, envelope: 'draft-genie' },
        surveys: { broker: 'sqs', queueUrl: sqs.queue('evg-verify-rmq'), endpoint: sqs.fauxqs.address },
        store: { broker: 'local' }
      },
      routes: [{ types: ['speaker.*'], to: ['draft-genie'] }, { types: ['survey.*'], to: ['surveys'] }, { types: ['*'], to: ['store'] }]
    }
    const ROUTES_FILE = writeJson(t, 'routes.json', routes)
    const app = await buildApp(testConfig(t, { ROUTES_FILE }))
    t.teardown(() => app.close())
    await app.listen({ port: 0, host: '127.0.0.1' })
    const gatewayUrl = baseUrl(app.server.address())

    const ok = cli('verify', ['--gateway', gatewayUrl, '--timeout', '10'], { ROUTES_FILE, ...sqs.env })
    t.equal(await ok.exit, 0, ok.out.stderr)
    t.match(ok.out.stdout, new RegExp(
      `draft-genie +rabbitmq +verified: speaker\\.onboarded \\S+ in exchange ${escape(exchange)} \\(routing key speaker\\.onboarded\\); ` +
      'draft-genie envelope: eventId, eventType, aggregateId, aggregateType, timestamp, version, correlationId, payload, ' +
      'tenant \\(AMQP header x-tenant-id\\) as sent; acked'
    ))
    t.match(ok.out.stdout, /surveys +sqs +verified: survey\.completed .*; deleted/)
    t.match(ok.out.stdout, /store +local +verified: /)

    // verify expects what its own routes file says: told cloudevents, it finds the message and says what is wrong.
    const told = writeJson(t, 'cloudevents.json', {
      ...routes,
      destinations: { ...routes.destinations, 'draft-genie': { ...routes.destinations['draft-genie'], envelope: 'cloudevents' } }
    })
    const wrong = cli('verify', ['--gateway', gatewayUrl, '--destination', 'draft-genie', '--timeout', '10'], {
      ROUTES_FILE: told, ...sqs.env
    })
    t.equal(await wrong.exit, 4)
    t.match(wrong.out.stderr, new RegExp(
      /draft-genie +rabbitmq +FAILED \(4\): the cloudevents envelope is not what was sent \(acked\): /.source +
      /the time is missing or not a time; /.source +
      /missing specversion, id, source, type, time, datacontenttype, dataschema, tenantid, correlationid, data, userid; /.source +
      /eventId, eventType, aggregateId, aggregateType, timestamp, version, correlationId, payload not of this format/.source
    ))

    const missing = uniqueName('missing')
    const nowhere = writeJson(t, 'nowhere.json', {
      ...routes,
      destinations: { ...routes.destinations, 'draft-genie': { ...routes.destinations['draft-genie'], exchange: missing } }
    })
    const unwatched = cli('verify', ['--gateway', gatewayUrl, '--destination', 'draft-genie'], { ROUTES_FILE: nowhere, ...sqs.env })
    t.equal(await unwatched.exit, 3, 'an exchange that cannot be watched is not waited for')
    t.match(unwatched.out.stderr, new RegExp(`draft-genie +rabbitmq +FAILED \\(3\\): cannot watch exchange ${escape(missing)} .*NOT_FOUND`))
    t.notMatch(unwatched.out.stdout, /POST/, 'and nothing is published')
  }
)
