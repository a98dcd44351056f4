import { Agent } from 'node:http'
import t from 'tap'
import { dataDir, exampleOf, runTs } from '../helper.js'
import { gateway, postEvent } from './gateway-process.js'

// Attacks over loopback, bounded in time and count; after each the gateway must be alive and serving.

t.test('SIGTERM under keep-alive load: drain, then only 202s and 503 problems, exit 0', async t => {
  const gw = await gateway(t, { SHUTDOWN_DRAIN_SECONDS: '1', LOG_LEVEL: 'info' })
  const agents = Array.from({ length: 3 }, () => new Agent({ keepAlive: true, maxSockets: 2 }))
  const answers: { status: number, headers: Record<string, unknown>, body: string }[] = []
  let refused = 0
  let stop = false
  const loops = agents.map(async agent => {
    // eslint-disable-next-line no-unmodified-loop-condition -- set by the test after its SIGTERM
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
  const shuttingDown = (a: typeof answers[number]) =>
    a.status === 503 && a.headers['retry-after'] !== undefined && /"code":"EVG_SHUTTING_DOWN"/.test(a.body)
  const others = answers.filter(a => a.status !== 202 && !shuttingDown(a))
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
