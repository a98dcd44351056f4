import t from 'tap'
import { TENANT, build, dataDir, exampleOf, runTs } from './helper.js'

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

t.test('the server exits 1 with a message naming the variable on bad config', async t => {
  const server = runTs('src/server.ts', [], { LOG_LEVEL: 'info', PORT: 'eighty', DATA_DIR: dataDir(t) })
  t.equal(await server.exit, 1)
  t.match(server.out.stderr, /Invalid configuration:\n\s+PORT: must be integer/)
})

t.test('SIGTERM: the server stops cleanly and exits 0', async t => {
  const server = runTs('src/server.ts', [], { LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir(t) })
  await server.printed('stdout', 'event-gateway ready')
  const port = /"address":"127\.0\.0\.1:(\d+)"|http:\/\/127\.0\.0\.1:(\d+)/.exec(server.out.stdout)
  const p = port?.[1] ?? port?.[2]
  t.ok(p, 'the server said where it listens')
  const res = await fetch(`http://127.0.0.1:${p}/v1/events/call.started`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    body: JSON.stringify(exampleOf('call.started'))
  })
  t.equal(res.status, 202)
  server.child.kill('SIGTERM')
  t.equal(await server.exit, 0)
  t.match(server.out.stdout, /"signal":"SIGTERM".*shutting down/)
})
