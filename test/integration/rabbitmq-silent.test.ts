// A network to RabbitMQ that stops answering without closing anything (every byte held both ways,
// by a proxy of the tests' own): sync publishes answer 503 by their deadline, the connection is
// taken as lost by its heartbeat in seconds, spooled events wait (a timeout is not a refusal:
// none is buried), and delivery resumes within seconds of the network coming back.
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { gateway } from '../attacks/gateway-process.js'
import { TENANT, exampleOf, post, testConfig } from '../helper.js'
import { HoldingProxy } from './holding-proxy.js'
import { AMQP_URL, Consumer, cleanupExchange, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

const skip = await rabbitSkip()

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** RabbitMQ's turn, a holding proxy in front of it, the AMQP URL through the proxy, and an exchange of the test's own. */
async function rabbitBehindProxy (t: Test, name: string) {
  await takeRabbitMqTurn(t)
  const rabbit = new URL(AMQP_URL)
  const proxy = await HoldingProxy.start(t, { host: rabbit.hostname, port: Number(rabbit.port || 5672) })
  const url = new URL(AMQP_URL)
  url.host = new URL(proxy.url).host
  const exchange = uniqueName(name)
  cleanupExchange(t, exchange)
  return { proxy, url, exchange }
}

t.test('RabbitMQ silent: 503 at the deadline, lost in seconds by the heartbeat, nothing buried, delivery back at once', {
  skip, timeout: 120_000
}, async t => {
  const { proxy, url, exchange } = await rabbitBehindProxy(t, 'silent')
  const env = {
    BROKER: 'rabbitmq',
    AMQP_URL: url.toString(),
    AMQP_EXCHANGE: exchange,
    AMQP_HEARTBEAT_SECONDS: '2',
    PUBLISH_TIMEOUT_MS: '1000',
    OUTBOX_MAX_ATTEMPTS: '1'
  }
  const sync = await buildApp(testConfig(t, env))
  t.teardown(() => sync.close())
  await sync.ready()
  const spooled = await buildApp(testConfig(t, { ...env, DELIVERY_MODE: 'spool' }))
  t.teardown(() => spooled.close())
  await spooled.ready()
  const consumer = await Consumer.bind(t, exchange)
  t.equal((await sync.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202, 'through the proxy')

  proxy.hold()
  const held = Date.now()
  const answers = await Promise.all(Array.from({ length: 5 }, () => sync.inject(post('call.ended', exampleOf('call.ended')))))
  t.same(answers.map(a => a.statusCode), [503, 503, 503, 503, 503], 'each sync publish a 503')
  const queued: string[] = []
  for (let i = 0; i < 10; i++) queued.push((await spooled.inject(post('call.ended', exampleOf('call.ended')))).json().id as string)
  // The heartbeat (2 s, missed twice) takes the connection down; readiness then says so.
  let down = false
  while (!down && Date.now() - held < 30_000) {
    const ready = (await sync.inject('/health/ready')).json() as { destinations: { up: boolean }[] }
    down = ready.destinations[0]?.up === false
    if (!down) await sleep(250) // the heartbeat's own clock
  }
  t.ok(down, `readiness saw the connection lost, ${Math.round((Date.now() - held) / 1000)} s into the silence (was minutes)`)
  await sleep(Math.max(0, 8000 - (Date.now() - held))) // a silence long enough for the relay to try, and fail, several times

  proxy.pass()
  let status = 0
  for (const stop = Date.now() + 20_000; status !== 202 && Date.now() < stop;) {
    status = (await sync.inject(post('call.ended', exampleOf('call.ended')))).statusCode
    if (status !== 202) await sleep(200) // a client retrying
  }
  t.equal(status, 202, 'published again once the network is back')
  await consumer.waitForIds(queued, 30_000)
  const arrived = new Set(consumer.messages.map(m => m.properties.messageId as string))
  t.same(queued.filter(id => !arrived.has(id)), [], 'every spooled event delivered after the silence')
  const dead = (await spooled.inject('/v1/admin/dead-letters')).json() as { deadLetters: unknown[] }
  t.same(dead.deadLetters, [], 'none buried, with OUTBOX_MAX_ATTEMPTS=1: the silence counted no attempt')
})

t.test('SIGTERM while RabbitMQ is silent with confirms due: every step of the shutdown is bounded, exit 0', {
  skip, timeout: 120_000
}, async t => {
  const { proxy, url, exchange } = await rabbitBehindProxy(t, 'silent-stop')
  // A heartbeat longer than the test: the connection still looks up while nothing answers.
  const gw = await gateway(t, {
    BROKER: 'rabbitmq',
    AMQP_URL: url.toString(),
    AMQP_EXCHANGE: exchange,
    AMQP_HEARTBEAT_SECONDS: '600',
    DELIVERY_MODE: 'spool',
    PUBLISH_TIMEOUT_MS: '2000'
  })
  const send = () => fetch(`${gw.base}/v1/events/call.ended`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    body: JSON.stringify(exampleOf('call.ended'))
  })
  t.equal((await send()).status, 202)
  proxy.hold()
  // Queued, and taken by the relay, whose publish now waits for a confirm that never comes.
  for (let i = 0; i < 5; i++) t.equal((await send()).status, 202)
  await sleep(500)
  gw.child.kill('SIGTERM')
  t.equal(await gw.exit, 0, 'exit 0: the relay, the confirms, the outbox and the database each closed within their bounds', {
    stderr: gw.stderr().slice(-3000)
  })
})
