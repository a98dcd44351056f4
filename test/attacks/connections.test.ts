import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { exampleOf } from '../helper.js'
import { gateway, postEvent } from './gateway-process.js'

// Attacks over loopback, bounded in time and count; after each the gateway must be alive and serving.

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
