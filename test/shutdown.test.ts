import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { TENANT, build, dataDir, exampleOf } from './helper.js'

t.test('closing the app lets the in-flight publish finish, then closes the broker', async t => {
  const { app, broker } = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const release = broker.hold()
  const response = fetch(`http://127.0.0.1:${port}/v1/events/call.ended`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, connection: 'close' },
    body: JSON.stringify(exampleOf('call.ended'))
  })
  while (broker.calls === 0) await new Promise(resolve => setImmediate(resolve))
  const closing = app.close()
  t.equal(broker.closed, false, 'broker still open while a publish is in flight')
  release()
  const res = await response
  t.equal(res.status, 202, 'the in-flight request was answered')
  t.equal(broker.published.length, 1)
  await closing
  t.equal(broker.closed, true, 'broker closed after the request finished')
})

function startServer (env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { err += d })
  return { child, output: () => out, errors: () => err }
}

t.test('the server exits 1 with a message naming the variable on bad config', async t => {
  const { child, errors } = startServer({ PORT: 'eighty', DATA_DIR: dataDir(t) })
  const [code] = await once(child, 'exit')
  t.equal(code, 1)
  t.match(errors(), /Invalid configuration:\n\s+PORT: must be integer/)
})

t.test('SIGTERM: the server stops cleanly and exits 0', async t => {
  const server = startServer({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir(t) })
  while (!server.output().includes('event-gateway ready')) {
    if (server.child.exitCode !== null) break
    await once(server.child.stdout, 'data')
  }
  const port = /"address":"127\.0\.0\.1:(\d+)"|http:\/\/127\.0\.0\.1:(\d+)/.exec(server.output())
  const p = port?.[1] ?? port?.[2]
  t.ok(p, 'the server said where it listens')
  const res = await fetch(`http://127.0.0.1:${p}/v1/events/call.started`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    body: JSON.stringify(exampleOf('call.started'))
  })
  t.equal(res.status, 202)
  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  t.equal(code, 0)
  t.match(server.output(), /"signal":"SIGTERM".*shutting down/)
})
