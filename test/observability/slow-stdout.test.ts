import { once } from 'node:events'
import t, { type Test } from 'tap'
import { TENANT, dataDir, exampleOf, runTs } from '../helper.js'

const body = JSON.stringify(exampleOf('call.ended'))
// The access line carries the URL: with this query string it is about 8 KB, so the pipe and the
// gateway's buffer fill after a few hundred events rather than thousands.
const padding = `?${'pad'.repeat(2600)}`

/** The gateway, its stdout a pipe nobody reads (as when a log shipper stalls) once it is ready. */
async function stalledGateway (t: Test, env: Record<string, string> = {}) {
  const server = runTs('src/server.ts', [], { LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir(t), ...env })
  t.teardown(() => { server.child.kill('SIGKILL') })
  await server.printed('stdout', 'event-gateway ready')
  const port = /"address":"127\.0\.0\.1:(\d+)"|http:\/\/127\.0\.0\.1:(\d+)/.exec(server.out.stdout)
  server.child.stdout.pause()
  return { server, base: `http://127.0.0.1:${port?.[1] ?? port?.[2]}` }
}

async function droppedLines (base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const match = /^gateway_log_lines_dropped_total (\d+)$/m.exec(text)
  if (match === null) throw new Error('no gateway_log_lines_dropped_total on /metrics')
  return Number(match[1])
}

/** Publishes events, 16 at a time, until log lines are dropped; returns the answers' statuses. */
async function loadUntilLinesDrop (base: string) {
  const statuses: number[] = []
  for (let round = 0; round < 20 && await droppedLines(base) === 0; round++) {
    await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      for (let n = 0; n < 10; n++) {
        const url = `${base}/v1/events/call.ended${i % 4 === 0 ? padding : ''}`
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT }, body })
        await res.arrayBuffer()
        statuses.push(res.status)
      }
    }))
  }
  return statuses
}

t.test('with a stdout nobody reads, the gateway keeps answering, counts the lines it drops, and exits 0 on SIGTERM', async t => {
  const { server, base } = await stalledGateway(t)
  t.equal(await droppedLines(base), 0)
  const statuses = await loadUntilLinesDrop(base)
  t.ok(await droppedLines(base) > 0, `lines dropped after ${statuses.length} events`)
  t.same(statuses.filter(s => s !== 202), [], 'every event was answered 202')
  t.equal((await fetch(`${base}/health/live`)).status, 200, 'the liveness probe answers')

  server.child.kill('SIGTERM')
  t.equal(await server.exit, 0, 'exits 0 on SIGTERM though its buffered lines could not be written')

  // What did reach stdout is whole lines: dropping never tears one.
  server.child.stdout.resume()
  await once(server.child.stdout, 'end')
  const lines = server.out.stdout.split('\n').filter(Boolean)
  t.ok(lines.every(l => { try { JSON.parse(l); return true } catch { return false } }), `all ${lines.length} lines on stdout are JSON`)
})

t.test('with a stdout nobody reads, a fatal error still ends the process, with exit code 1', async t => {
  // An uncaught exception on demand, thrown from outside any request.
  const crashOnSigwinch = "--import=data:text/javascript,process.on('SIGWINCH',()=>setImmediate(()=>{throw(new(Error)('boom'))}))"
  const { server, base } = await stalledGateway(t, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${crashOnSigwinch}` })
  await loadUntilLinesDrop(base)
  t.ok(await droppedLines(base) > 0, 'stdout is stalled')
  server.child.kill('SIGWINCH')
  t.equal(await server.exit, 1)
})
