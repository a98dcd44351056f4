import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Agent, request } from 'node:http'
import { createServer, connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { TENANT, dataDir, exampleOf, runTs } from './helper.js'

// The gateway as `npm start` runs it (capped heap), attacked over loopback the way a careless or
// hostile client would; bounded in time and count. After each attack it must be alive and serving.

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  return port
}

/** Starts src/server.ts (optionally under `ulimit -n`), waits until it listens. */
async function gateway (t: Test, env: Record<string, string> = {}, openFiles?: number) {
  const port = await freePort()
  const fullEnv = { ...process.env, LOG_LEVEL: 'warn', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir(t), ...env }
  const node = [process.execPath, '--max-old-space-size=192', '--import', 'tsx', 'src/server.ts']
  const child = openFiles === undefined
    ? spawn(node[0] as string, node.slice(1), { env: fullEnv, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('bash', ['-c', `ulimit -n ${openFiles} && exec "$@"`, 'bash', ...node], { env: fullEnv, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', d => { stderr += d })
  const exit = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { child.kill('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the gateway exited: ${stderr}`)
    if (await fetch(`${base}/health/live`).then(r => r.ok, () => false)) break
    await new Promise(resolve => setTimeout(resolve, 100)) // start-up: nothing to await but the port
  }
  const alive = async () => child.exitCode === null && (await fetch(`${base}/health/live`).then(r => r.status, () => 0)) === 200
  return { child, port, base, exit, alive, stderr: () => stderr }
}

const postEvent = (base: string, body: string, agent?: Agent) => new Promise<{ status: number, headers: Record<string, unknown>, body: string }>((resolve, reject) => {
  const req = request(`${base}/v1/events/call.ended`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT } }, res => {
    let text = ''
    res.on('data', d => { text += d })
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
  })
  req.on('error', reject)
  req.end(body)
})

t.test('24 connections sending invalid maximum-size batches: bounded answers, the process lives', async t => {
  const gw = await gateway(t)
  // 100 events of 2.5 KB, each with 60 wrong keywords: 600 validation errors in ~250 KB
  const data = { ...exampleOf('sentiment.analyzed'), keywords: Array.from({ length: 60 }, () => 7), call_id: 'c'.repeat(100) }
  const body = JSON.stringify({ events: Array.from({ length: 100 }, () => ({ type: 'sentiment.analyzed', data })) })
  const sizes: number[] = []
  const statuses = new Set<number>()
  await Promise.all(Array.from({ length: 24 }, async () => {
    for (let round = 0; round < 4; round++) {
      const res = await fetch(`${gw.base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT }, body })
      statuses.add(res.status)
      sizes.push((await res.text()).length)
    }
  }))
  t.same([...statuses].sort(), [...statuses].filter(s => s === 400 || s === 503).sort(), `only 400 and 503 (${[...statuses]})`)
  t.ok(Math.max(...sizes) < body.length, `no answer larger than its request (${Math.max(...sizes)} vs ${body.length} bytes)`)
  t.ok(await gw.alive(), 'alive and serving')
})

t.test('400 concurrent valid maximum-size batches: each taken or refused with 503, the process lives', async t => {
  const gw = await gateway(t)
  const data = { ...exampleOf('call.ended'), transcript: 'x'.repeat(2400) }
  const body = JSON.stringify({ events: Array.from({ length: 100 }, () => ({ type: 'call.ended', data })) })
  t.ok(body.length > 240000 && body.length <= 262144, `a batch close to BODY_LIMIT_BYTES (${body.length} bytes)`)
  const statuses = await Promise.all(Array.from({ length: 400 }, () =>
    fetch(`${gw.base}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT }, body })
      .then(async r => { await r.arrayBuffer(); return r.status }, () => 0)))
  const counts = statuses.reduce<Record<number, number>>((c, s) => ({ ...c, [s]: (c[s] ?? 0) + 1 }), {})
  t.same(Object.keys(counts).filter(s => s !== '202' && s !== '503'), [], `only 202 and 503: ${JSON.stringify(counts)}`)
  t.ok((counts[202] ?? 0) > 0, 'some were taken')
  t.ok(await gw.alive(), 'alive and serving')
})

t.test('half-open connections past the open-files limit: closed beyond the cap, alive, recovers', async t => {
  // ulimit -n 256: at most 128 connections (128 descriptors kept for the process itself)
  const gw = await gateway(t, { HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '20000' }, 256)
  const sockets: Socket[] = []
  let closedByServer = 0
  for (let i = 0; i < 400; i++) {
    const socket = connect(gw.port, '127.0.0.1')
    socket.on('error', () => {})
    socket.on('close', () => { closedByServer++ })
    socket.write('POST /v1/events/call.ended HTTP/1.1\r\nHost: x\r\n')
    sockets.push(socket)
  }
  await new Promise(resolve => setTimeout(resolve, 800)) // let the server see them all
  t.equal(gw.child.exitCode, null, 'still running with 400 half-open connections under ulimit -n 256')
  t.ok(closedByServer >= 400 - 128, `connections beyond the cap were closed at once (${closedByServer})`)
  for (const s of sockets) s.destroy()
  let back = false
  for (let i = 0; i < 50 && !back; i++) {
    back = await gw.alive()
    if (!back) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.ok(back, 'serves again once they close')
  const res = await postEvent(gw.base, JSON.stringify(exampleOf('call.ended')))
  t.equal(res.status, 202, res.body)
})

t.test('a stalled request head is answered 408 with a problem, at its deadline', async t => {
  const gw = await gateway(t, { HTTP_HEADERS_TIMEOUT_MS: '1000' })
  const socket = connect(gw.port, '127.0.0.1')
  socket.write('POST /v1/events/call.ended HTTP/1.1\r\nHost: x\r\n')
  let answer = ''
  socket.on('data', d => { answer += d })
  await once(socket, 'close')
  t.match(answer, /^HTTP\/1\.1 408 Request Timeout/)
  t.match(answer, /content-type: application\/problem\+json/i)
  t.match(answer, /"code":"EVG_TIMEOUT"/)
  t.ok(await gw.alive())
})

t.test('SIGTERM under keep-alive load: drain, then only 202s and 503 problems, exit 0', async t => {
  const gw = await gateway(t, { SHUTDOWN_DRAIN_SECONDS: '1', LOG_LEVEL: 'info' })
  const agents = [new Agent({ keepAlive: true, maxSockets: 2 }), new Agent({ keepAlive: true, maxSockets: 2 }), new Agent({ keepAlive: true, maxSockets: 2 })]
  const answers: { status: number, headers: Record<string, unknown>, body: string }[] = []
  let refused = 0
  let stop = false
  const loops = agents.map(async agent => {
    for (let i = 0; i < 2000 && !stop; i++) {
      try {
        answers.push(await postEvent(gw.base, JSON.stringify(exampleOf('call.ended')), agent))
      } catch {
        refused++ // the listener has closed: a new connection is refused
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    }
  })
  while (answers.length < 30) await new Promise(resolve => setTimeout(resolve, 10))
  gw.child.kill('SIGTERM')
  // readiness turns 503 at once while events are still taken
  let draining = false
  for (let i = 0; i < 20 && !draining; i++) {
    const ready = await fetch(`${gw.base}/health/ready`).then(r => r.status, () => 0)
    draining = ready === 503
  }
  t.ok(draining, 'readiness says 503 during the drain')
  const exitCode = await gw.exit
  stop = true
  await Promise.all(loops)
  for (const a of agents) a.destroy()
  t.equal(exitCode, 0, 'exits 0')
  const others = answers.filter(a => a.status !== 202 && !(a.status === 503 && a.headers['retry-after'] !== undefined && /"code":"EVG_SHUTTING_DOWN"/.test(a.body)))
  t.same(others.map(a => `${a.status} ${a.body.slice(0, 80)}`), [], 'every answer was a 202 or a 503 problem with Retry-After')
  t.ok(answers.filter(a => a.status === 202).length > 30, `${answers.length} answers, ${refused} refused connections after the close`)
  t.notMatch(gw.stderr(), /killed by timeout/)
})

t.test('a port in use: one line, exit 1', async t => {
  const gw = await gateway(t)
  const second = runTs('src/server.ts', [], { LOG_LEVEL: 'warn', PORT: String(gw.port), HOST: '127.0.0.1', DATA_DIR: dataDir(t) })
  t.equal(await second.exit, 1)
  t.match(second.out.stderr, /^Invalid configuration:\n {2}PORT, HOST: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)\n$/)
})
