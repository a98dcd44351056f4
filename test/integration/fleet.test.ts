import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { dataDir, exampleOf } from '../helper.js'
import { gateway } from '../attacks/gateway-process.js'
import { serviceSkip } from '../services.js'

// The promises a fleet depends on, with real processes: three gateways sharing Redis
// (STATE_URL), and the same tests on one gateway with the embedded store. The destination is the
// embedded store in one DATA_DIR the replicas share, so every publish of every replica is counted
// in one place (read back with GET /v1/events).

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/11'

/** Whether something accepts connections at host:port. */
const listening = (port: number, host: string) => new Promise<boolean>(resolve => {
  const socket = connect(port, host, () => { socket.end(); resolve(true) })
  socket.on('error', () => resolve(false))
})

async function redisSkip (): Promise<string | false> {
  const { hostname, port } = new URL(REDIS_URL)
  return await serviceSkip('Redis', {
    at: REDIS_URL,
    probe: async () => { if (!await listening(Number(port || 6379), hostname)) throw new Error('nothing accepts connections there') },
    hint: 'start it with redis-server --daemonize yes --save ""'
  })
}

type Replica = Awaited<ReturnType<typeof gateway>>
type Answer = {
  status: number, headers: Headers, json: Record<string, unknown> & { results?: { id?: string, error?: { code: string } }[] }
}

async function fleet (t: Test, store: 'redis' | 'sqlite', env: Record<string, string> = {}): Promise<Replica[]> {
  const shared = { DATA_DIR: dataDir(t), BROKER: 'local', ...(store === 'redis' ? { STATE_URL: REDIS_URL } : {}), ...env }
  const count = store === 'redis' ? 3 : 1
  return Promise.all(Array.from({ length: count }, () => gateway(t, shared)))
}

const send = async (base: string, path: string, tenant: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
  const res = await fetch(`${base}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': tenant, ...headers }, body: JSON.stringify(body)
  })
  return { status: res.status, headers: res.headers, json: await res.json() as Answer['json'] }
}

/** The base URL of the replica request `i` goes to: round robin over the fleet. */
const baseOf = (gws: Replica[], i: number) => (gws[i % gws.length] as Replica).base

async function stored (base: string, tenant: string): Promise<{ id: string, type: string }[]> {
  const res = await fetch(`${base}/v1/events?limit=1000`, { headers: { 'x-tenant-id': tenant } })
  return ((await res.json()) as { events: { id: string, type: string }[] }).events
}

const skip = await redisSkip()
const call = exampleOf('call.ended')

for (const store of ['redis', 'sqlite'] as const) {
  const replicas = store === 'redis' ? 'three gateways sharing Redis' : 'one gateway, embedded store'
  const opts = store === 'redis' ? { skip } : {}

  t.test(`${replicas}: the same key sent to each replica at once publishes once, and all answer the same id`, opts, async t => {
    const gws = await fleet(t, store)
    const tenant = randomUUID()
    const answers = await Promise.all(Array.from({ length: 9 }, (_, i) =>
      send(baseOf(gws, i), '/v1/events/call.ended', tenant, call, { 'idempotency-key': 'fleet-1' })))
    t.same([...new Set(answers.map(a => a.status))], [202])
    t.equal(new Set(answers.map(a => a.json.id)).size, 1, 'one id in every answer')
    t.equal((await stored((gws[0] as Replica).base, tenant)).length, 1, 'published once')
  })

  t.test(
    `${replicas}: 20 identical batches at once publish one event per key; a single POST with a batch key is the same event`,
    opts,
    async t => {
      const gws = await fleet(t, store)
      const tenant = randomUUID()
      const events = ['a', 'b', 'c', 'd', 'e']
        .map(k => ({ type: 'call.ended', data: { ...call, call_id: k }, idempotencyKey: `item-${k}` }))
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send(baseOf(gws, i), '/v1/events', tenant, { events })))
      t.same([...new Set(answers.map(a => a.status))], [202])
      t.equal(new Set(answers.map(a => a.json.results?.map(r => r.id).join())).size, 1, 'every answer names the same five events')
      const last = baseOf(gws, gws.length - 1)
      const single = await send(last, '/v1/events/call.ended', tenant, { ...call, call_id: 'c' }, { 'idempotency-key': 'item-c' })
      t.equal(single.json.id, answers[0]?.json.results?.[2]?.id)
      const renamed = events.map(e => ({ type: e.type, data: { ...e.data, call_id: `w-${e.data.call_id}` } }))
      const whole = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        send(baseOf(gws, i), '/v1/events', tenant, { events: renamed }, { 'idempotency-key': 'whole' })))
      t.same([...new Set(whole.map(a => a.status))], [202])
      t.equal(new Set(whole.map(a => a.json.results?.map(r => r.id).join())).size, 1)
      t.equal((await stored((gws[0] as Replica).base, tenant)).length, 10, 'five per-event keys and five under the request key')
    }
  )

  t.test(`${replicas}: a tenant over its limit gets 429 on every replica; another tenant is not affected`, opts, async t => {
    const dir = t.testdir({ 'limits.json': JSON.stringify({ tenants: { } }) })
    const gws = await fleet(t, store, { RATE_LIMIT_PER_TENANT: '5', RATE_LIMIT_BURST: '10', RATE_LIMITS_FILE: join(dir, 'limits.json') })
    const noisy = randomUUID()
    const quiet = randomUUID()
    const started = Date.now()
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => send(baseOf(gws, i), '/v1/events/call.ended', noisy, call)))
    const seconds = (Date.now() - started) / 1000
    const taken = answers.filter(a => a.status === 202).length
    const refused = answers.filter(a => a.status === 429)
    t.equal(taken + refused.length, 60, 'only 202 and 429')
    // The burst, plus what the rate refilled while the requests were in flight, and no more:
    // the bucket is one for the fleet, not one per replica.
    t.ok(taken >= 10 && taken <= 10 + Math.ceil(5 * seconds) + 1, `${taken} taken in ${seconds.toFixed(2)} s`)
    t.match(refused[0]?.json, { code: 'EVG_RATE_LIMITED' })
    t.ok(Number(refused[0]?.headers.get('retry-after')) >= 1)
    t.equal(refused[0]?.headers.get('ratelimit-limit'), '10')
    const other = await Promise.all(Array.from({ length: 9 }, (_, i) => send(baseOf(gws, i), '/v1/events/call.ended', quiet, call)))
    t.same([...new Set(other.map(a => a.status))], [202], 'the quiet tenant has its own bucket')
    t.equal((await stored((gws[0] as Replica).base, noisy)).length, taken, 'every 202 was published, no 429 was')
  })
}

/** A Redis of the test's own, on a free port, so that the test can stop it. */
async function ownRedis (t: Test): Promise<{
  url: string, stop: () => Promise<void>, start: () => Promise<void>, sleep: (seconds: number) => Promise<void>
}> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  let child: ChildProcess | undefined
  const start = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--enable-debug-command', 'yes']
    child = spawn('redis-server', args, { stdio: 'ignore' })
    for (let i = 0; i < 100; i++) {
      if (await listening(port, '127.0.0.1')) return
      await new Promise(resolve => setTimeout(resolve, 50)) // nothing to await but the port
    }
    throw new Error('redis-server did not start')
  }
  const stop = async () => {
    if (child === undefined || child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(stop)
  await start()
  /** Redis runs nothing else for `seconds` (DEBUG SLEEP), from another client. */
  const sleep = (seconds: number) => new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`DEBUG SLEEP ${seconds}\r\n`))
    socket.once('data', () => { socket.end(); resolve() })
    socket.once('error', reject)
  })
  return { url: `redis://127.0.0.1:${port}/0`, stop, start, sleep }
}

t.test(
  'Redis down: keyed requests get 503 EVG_STATE_UNAVAILABLE and publish nothing; unkeyed ones are served; back up, keys work again',
  { skip },
  async t => {
    const redis = await ownRedis(t)
    const [gw] = await fleet(t, 'sqlite', { STATE_URL: redis.url, RATE_LIMIT_PER_TENANT: '1000', LOG_LEVEL: 'info' }) as Replica[]
    const base = (gw as Replica).base
    const tenant = randomUUID()
    t.equal((await send(base, '/v1/events/call.ended', tenant, call, { 'idempotency-key': 'before' })).status, 202)

    // Slow: the gateway gives up after STATE_TIMEOUT_MS; Redis runs the reservation later all the
    // same, and the gateway's release after it, so the retry is not told the key is in progress.
    // (the rate-limit check waits STATE_TIMEOUT_MS first, then the reservation does)
    const asleep = redis.sleep(3)
    await new Promise(resolve => setTimeout(resolve, 100))
    const slow = await send(base, '/v1/events/call.ended', tenant, call, { 'idempotency-key': 'slow' })
    t.equal(slow.status, 503)
    t.match(slow.json, { code: 'EVG_STATE_UNAVAILABLE' })
    await asleep
    const retry = await send(base, '/v1/events/call.ended', tenant, call, { 'idempotency-key': 'slow' })
    t.equal(retry.status, 202, 'the retry publishes at once: no reservation was left behind')

    await redis.stop()
    const keyed = await send(base, '/v1/events/call.ended', tenant, call, { 'idempotency-key': 'during' })
    t.equal(keyed.status, 503)
    t.match(keyed.json, { code: 'EVG_STATE_UNAVAILABLE' })
    t.ok(Number(keyed.headers.get('retry-after')) >= 1)
    const batch = await send(base, '/v1/events', tenant, {
      events: [{ type: 'call.ended', data: call, idempotencyKey: 'b' }, { type: 'call.ended', data: call }]
    })
    t.equal(batch.status, 207)
    t.equal(batch.json.results?.[0]?.error?.code, 'EVG_STATE_UNAVAILABLE')
    t.ok(batch.json.results?.[1]?.id, 'the unkeyed event of the batch was taken')
    const unkeyed = await send(base, '/v1/events/call.ended', tenant, call)
    t.equal(unkeyed.status, 202, 'unkeyed: served, not rate limited while the store is down')
    const ready = await (await fetch(`${base}/health/ready`)).json() as { status: string, state: { store: string, up: boolean } }
    t.match(ready, { status: 'degraded', state: { store: 'redis', up: false } })
    t.equal((await stored(base, tenant)).length, 4, 'the keyed events refused were not published')

    await redis.start()
    let again
    for (let i = 0; i < 100; i++) {
      again = await send(base, '/v1/events/call.ended', tenant, call, { 'idempotency-key': 'during' })
      if (again.status === 202) break
      await new Promise(resolve => setTimeout(resolve, 100)) // ioredis reconnects on its own schedule
    }
    t.equal(again?.status, 202, 'keys work again once Redis is back')
    t.match((await (await fetch(`${base}/metrics`)).text()), /gateway_state_errors_total\{operation="reserve"\} [1-9]/)
  }
)
