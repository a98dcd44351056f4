import { networkInterfaces } from 'node:os'
import { connect } from 'node:net'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { TENANT, dataDir, runTs, testConfig } from './helper.js'

// What a person meets on the first start: where the gateway listens without keys, where the docs
// are, what `/` gives, and a Ctrl-C that does not wait for a load balancer that is not there.

/** An IPv4 address of this machine other than the loopback, if it has one. */
const otherAddress = Object.values(networkInterfaces()).flat().find(i => i !== undefined && i.family === 'IPv4' && !i.internal)?.address

async function reachable (host: string, port: number): Promise<boolean> {
  const socket = connect(port, host)
  try {
    await once(socket, 'connect')
    return true
  } catch {
    return false
  } finally {
    socket.destroy()
  }
}

async function start (t: Test, env: Record<string, string> = {}) {
  const server = runTs('src/server.ts', [], {
    LOG_LEVEL: 'info',
    PORT: '0',
    DATA_DIR: dataDir(t),
    HOST: undefined,
    API_KEYS_FILE: undefined,
    SHUTDOWN_DRAIN_SECONDS: undefined,
    KUBERNETES_SERVICE_HOST: undefined,
    ...env
  })
  t.teardown(() => { server.child.kill('SIGKILL') })
  await server.printed('stdout', 'event-gateway ready')
  const docs = /"docs":"(http:\/\/[^"]+)\/docs"/.exec(server.out.stdout)?.[1]
  return { server, base: docs, port: Number(/:(\d+)$/.exec(docs ?? '')?.[1]) }
}

t.test('without keys or HOST: the loopback only, said in the log; the log names the docs address', async t => {
  const { server, base, port } = await start(t)
  t.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'the docs address is in the ready line')
  const docs = /event-gateway ready: the docs at http:\/\/127\.0\.0\.1:\d+\/docs \(publishers\) and http:\/\/[\d.:]+\/docs\/asyncapi/
  t.match(server.out.stdout, docs)
  t.match(
    server.out.stdout,
    /authentication is off, so the gateway listens on 127\.0\.0\.1 only; set HOST=0\.0\.0\.0 to listen on every interface/
  )
  t.ok(await reachable('127.0.0.1', port), 'reachable on the loopback')
  if (otherAddress === undefined) t.comment('this machine has no other address to try')
  else t.notOk(await reachable(otherAddress, port), `refused on ${otherAddress}`)
})

const noOtherAddress = otherAddress === undefined ? 'this machine has no other address to try' : false

t.test('HOST=0.0.0.0: every interface, and the docs address a person can open', { skip: noOtherAddress }, async t => {
  const { base, port } = await start(t, { HOST: '0.0.0.0' })
  t.match(base, /^http:\/\/(127\.0\.0\.1|localhost):\d+$/, 'an address a person here can open')
  t.ok(await reachable(otherAddress as string, port), `reachable on ${otherAddress as string}`)
})

t.test('`/`: a page of links for a browser, the same links as JSON for a client that asks', async t => {
  const { base } = await start(t)
  const html = await fetch(`${base}/`, { headers: { accept: 'text/html,application/xhtml+xml' } })
  t.equal(html.status, 200)
  t.match(html.headers.get('content-type'), /^text\/html/)
  const page = await html.text()
  const hrefs = ['/docs', '/openapi.json', '/docs/asyncapi', '/asyncapi.json', '/v1/event-types', '/health/ready', '/metrics']
  for (const href of hrefs) t.match(page, `href="${href}"`)
  const json = await fetch(`${base}/`, { headers: { accept: 'application/json' } })
  t.match(await json.json(), { links: hrefs.map(href => ({ href })) })
  t.equal(
    (await fetch(`${base}/v1/events/call.started`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
      body: '{}'
    })).status,
    400,
    'the API is as before'
  )
})

t.test('Ctrl-C outside Kubernetes: no drain; on Kubernetes (KUBERNETES_SERVICE_HOST), the 5 s drain', async t => {
  const dev = await start(t)
  dev.server.child.kill('SIGINT')
  t.equal(await dev.server.exit, 0)
  t.match(dev.server.out.stdout, /"signal":"SIGINT","drainSeconds":0,"msg":"shutting down"/)
  const pod = await start(t, { KUBERNETES_SERVICE_HOST: '10.96.0.1' })
  pod.server.child.kill('SIGTERM')
  await pod.server.printed('stdout', 'shutting down: draining')
  t.match(pod.server.out.stdout, /"signal":"SIGTERM","drainSeconds":5,"msg":"shutting down: draining"/)
})

t.test('a broker that is down at start, with PUBLISH_TIMEOUT_MS over 10 s: the gateway still starts (503s until it is up)', async t => {
  const app = await buildApp(testConfig(t, {
    BROKER: 'rabbitmq',
    AMQP_URL: 'amqp://guest:guest@127.0.0.1:9',
    PUBLISH_TIMEOUT_MS: '10500'
  }))
  t.teardown(() => app.close())
  // Fastify gives a hook 10 s unless told otherwise: the start's wait for the broker took longer.
  await app.ready()
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { status: 'unavailable', destinations: [{ up: false }] })
})
