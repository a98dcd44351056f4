import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { Readable, type Transform } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import zlib from 'node:zlib'
import t, { type Test } from 'tap'
import { TENANT, build, exampleOf, post, postBatch } from '../helper.js'
import { MAX_DECODING, SUPPORTED_CODINGS } from '../../src/http/hooks/content-encoding.js'

const hasZstd = SUPPORTED_CODINGS.includes('zstd')
// On Node.js 22.15 / 23.8 and later; looked up so that this file loads on an older one (the
// zstd cases are skipped there).
const { zstdCompressSync, createZstdCompress } = zlib as Partial<typeof zlib>

const COMPRESS: Record<string, (body: Buffer) => Buffer> = {
  gzip: body => zlib.gzipSync(body),
  'x-gzip': body => zlib.gzipSync(body),
  deflate: body => zlib.deflateSync(body),
  br: body => zlib.brotliCompressSync(body),
  zstd: body => zstdCompressSync!(body)
}

/** A call.ended of about 130 KB, multi-byte characters included, so that it spans many decoded chunks. */
function bigCall (): Record<string, unknown> {
  return { ...exampleOf('call.ended'), transcript: 'Kunde möchte einen Rückruf, morgen um 14 Uhr — 明天 ☎. '.repeat(2000) }
}

/** `post` with its body compressed and Content-Encoding set. */
function postEncoded (type: string, coding: string, body: Buffer, headers: Record<string, string> = {}) {
  return { ...post(type, ''), headers: { ...post(type, '').headers, 'content-encoding': coding, ...headers }, payload: body }
}

const expectProblem = (
  t: Test,
  res: { statusCode: number, headers: Record<string, unknown>, json: () => { code: string, detail?: string } },
  status: number,
  code: string,
  detail?: RegExp
) => {
  t.equal(res.statusCode, status, `${code}: status`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, `${code}: problem+json`)
  t.match(res.json(), { status, code, ...(detail === undefined ? {} : { detail }) })
}

t.test('gzip, x-gzip, deflate, br and zstd bodies are decoded: 202, and the event is the payload as it was', async t => {
  const { app, broker } = await build(t)
  const data = bigCall()
  const plain = Buffer.from(JSON.stringify(data))
  for (const [coding, compress] of Object.entries(COMPRESS)) {
    await t.test(coding, { skip: coding === 'zstd' && !hasZstd ? 'this runtime\'s zlib has no zstd' : false }, async t => {
      const body = compress(plain)
      t.ok(body.length < plain.length / 5, `sent compressed (${body.length} of ${plain.length} bytes)`)
      const res = await app.inject(postEncoded('call.ended', coding, body))
      t.equal(res.statusCode, 202, res.body.slice(0, 200))
      t.same(broker.published.at(-1)?.envelope.data, data, 'the event\'s data is the uncompressed payload')
    })
  }
  // Coding names are case-insensitive, with optional white space; identity is no coding at all.
  for (const coding of ['GZIP', ' Gzip ', 'identity, gzip']) {
    const res = await app.inject(postEncoded('call.ended', coding, zlib.gzipSync(plain)))
    t.equal(res.statusCode, 202, `'${coding}'`)
  }
  const identity = await app.inject(postEncoded('call.ended', 'identity', plain))
  t.equal(identity.statusCode, 202, 'identity: the body as it is')
  t.same(broker.published.at(-1)?.envelope.data, data)
})

t.test('the batch endpoint takes a gzip body', async t => {
  const { app, broker } = await build(t)
  const events = [
    { type: 'call.started', data: exampleOf('call.started') },
    { type: 'call.ended', data: bigCall() }
  ]
  const batch = postBatch(events)
  const headers = { ...batch.headers, 'content-encoding': 'gzip' }
  const res = await app.inject({ ...batch, headers, payload: zlib.gzipSync(batch.payload) })
  t.equal(res.statusCode, 202, res.body.slice(0, 200))
  t.same(broker.published.map(e => e.envelope.data), events.map(e => e.data))
})

t.test('an unknown coding, or several, is refused 415 with the codings the gateway decodes', async t => {
  const { app, broker } = await build(t)
  // A plain JSON body under each: before, the header was ignored and the event published.
  const plain = Buffer.from(JSON.stringify(exampleOf('call.ended')))
  const codings = ['compress', 'x-foo', 'constructor', '__proto__', 'gzip, br', 'gzip, gzip', ...(hasZstd ? [] : ['zstd'])]
  for (const coding of codings) {
    const res = await app.inject(postEncoded('call.ended', coding, plain))
    expectProblem(t, res, 415, 'EVG_UNSUPPORTED_MEDIA', /content coding|Content-Encoding/)
    t.equal(res.headers['accept-encoding'], SUPPORTED_CODINGS.join(', '), `${coding}: Accept-Encoding (RFC 7694)`)
  }
  t.match(SUPPORTED_CODINGS, ['gzip', 'deflate', 'br'])
  t.equal(broker.calls, 0, 'nothing published')
  const rejected = `gateway_events_rejected_total{type="call.ended",code="EVG_UNSUPPORTED_MEDIA"} ${codings.length}\n`
  t.match((await app.inject('/metrics')).body, rejected, 'counted as refused events')
})

t.test('a corrupt or truncated stream is a 400 problem naming the coding; valid gzip of bad JSON is bad JSON', async t => {
  const { app, broker } = await build(t)
  const plain = Buffer.from(JSON.stringify(bigCall()))
  const gzip = zlib.gzipSync(plain)
  // Streamed with a 16 MiB window: over the 8 MiB RFC 9659 allows for HTTP.
  const wideZstd = hasZstd
    ? await compressZeros(64 * 1024 * 1024, createZstdCompress!({ params: { [zlib.constants.ZSTD_c_windowLog]: 24 } }))
    : undefined
  const cases: [string, Buffer, string][] = [
    ['gzip', plain, 'not gzip at all'],
    ['gzip', gzip.subarray(0, gzip.length >> 1), 'cut in half'],
    ['gzip', Buffer.concat([gzip.subarray(0, 200), Buffer.alloc(64, 0xff), gzip.subarray(264)]), 'bytes overwritten'],
    ['deflate', zlib.deflateRawSync(plain), 'raw deflate, not the zlib format'],
    ['br', Buffer.from('this is not brotli'), 'not brotli'],
    ...(hasZstd
      ? [
          ['zstd', Buffer.from('this is not zstd'), 'not zstd'],
          ['zstd', wideZstd, 'a 16 MiB window']
        ] as [string, Buffer, string][]
      : [])
  ]
  for (const [coding, body, what] of cases) {
    const res = await app.inject(postEncoded('call.ended', coding, body))
    t.comment(`${coding}, ${what}: ${res.json().detail}`)
    expectProblem(t, res, 400, 'EVG_VALIDATION', new RegExp(`^the body is not valid ${coding} data`))
  }
  const badJson = await app.inject(postEncoded('call.ended', 'gzip', zlib.gzipSync('{"call_id": "x",')))
  expectProblem(t, badJson, 400, 'EVG_VALIDATION', /not valid JSON/)
  t.equal(broker.calls, 0)
  t.equal((await app.inject(postEncoded('call.ended', 'gzip', gzip))).statusCode, 202, 'still serving')
})

/** Zeros, `total` bytes of them, a 1 MiB buffer repeated: the bomb is made without holding it. */
function zeros (total: number): Readable {
  const chunk = Buffer.alloc(1024 * 1024)
  return Readable.from((function * () { for (let sent = 0; sent < total; sent += chunk.length) yield chunk })())
}

async function compressZeros (total: number, compressor: Transform, copies = 1): Promise<Buffer> {
  const one = await buffer(zeros(total).pipe(compressor))
  // gzip members and zstd frames may follow one another: one compressed piece, repeated.
  return Buffer.concat(Array.from({ length: copies }, () => one))
}

/** A POST over a real connection, the body streamed in 64 KiB writes; chunked unless told the length. */
function send (port: number, coding: string, body: Buffer, withLength: boolean) {
  return new Promise<{ status: number, headers: Record<string, unknown>, body: string }>((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/events/call.ended',
      headers: {
        'content-type': 'application/json',
        'content-encoding': coding,
        'x-tenant-id': TENANT,
        ...(withLength ? { 'content-length': body.length } : {})
      }
    }, res => {
      let text = ''
      res.on('error', reject)
      res.on('data', d => { text += d })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    for (let at = 0; at < body.length; at += 65536) req.write(body.subarray(at, at + 65536))
    req.end()
  })
}

t.test('zip bombs: 2 GiB of zeros sent as a few KB to 2 MB, refused 413 once the limit is decoded, without inflating the rest', async t => {
  const limit = 4 * 1024 * 1024
  const { app, broker } = await build(t, { BODY_LIMIT_BYTES: String(limit) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const MiB = 1024 * 1024
  const bombs: [string, () => Promise<Buffer>, boolean][] = [
    ['gzip', () => compressZeros(64 * MiB, zlib.createGzip({ level: 9 }), 32), false],
    ['br', () => compressZeros(2048 * MiB, zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } })), true],
    ['zstd', () => compressZeros(256 * MiB, createZstdCompress!(), 8), false]
  ]
  for (const [coding, make, withLength] of bombs) {
    await t.test(coding, { skip: coding === 'zstd' && !hasZstd ? 'this runtime\'s zlib has no zstd' : false }, async t => {
      const bomb = await make()
      // Under the limit as sent: before, it was read as text and refused as bad JSON (400).
      t.ok(bomb.length < limit, `${bomb.length} bytes sent ${withLength ? 'with Content-Length' : 'chunked'}`)
      // Inflating all 2 GiB takes seconds of CPU (about 5 s here for each coding); stopping at the
      // limit, milliseconds. CPU time, unlike wall time, hardly grows on a busy machine.
      const cpu = process.cpuUsage()
      const started = performance.now()
      const res = await send(port, coding, bomb, withLength)
      const used = process.cpuUsage(cpu)
      const cpuMs = (used.user + used.system) / 1000
      t.comment(`413 after ${Math.round(performance.now() - started)} ms, ${Math.round(cpuMs)} ms of CPU`)
      t.equal(res.status, 413, res.body.slice(0, 200))
      t.match(String(res.headers['content-type']), /^application\/problem\+json/)
      t.match(JSON.parse(res.body), {
        status: 413,
        code: 'EVG_TOO_LARGE',
        detail: `the body, decoded, is over the limit of ${limit} bytes (BODY_LIMIT_BYTES)`,
        instance: '/v1/events/call.ended'
      })
      t.ok(cpuMs < 1500, `inflating stopped at the limit (${Math.round(cpuMs)} ms of CPU)`)
      // Nor does it go on after the answer: a decoder left running would keep a core busy, about
      // 1,500 ms of CPU in the next 1,500 ms; the rest (the client sending the remaining bytes, the
      // server dropping them, a GC of the bomb) stays far below, even on a loaded machine.
      const idle = process.cpuUsage()
      await new Promise(resolve => setTimeout(resolve, 1500))
      const after = process.cpuUsage(idle)
      const afterMs = (after.user + after.system) / 1000
      t.ok(afterMs < 700, `nothing inflates once it is answered (${Math.round(afterMs)} ms of CPU in the next 1,500 ms)`)
    })
  }
  t.equal(broker.calls, 0)
  const fine = await send(port, 'gzip', zlib.gzipSync(JSON.stringify(exampleOf('call.ended'))), false)
  t.equal(fine.status, 202, 'still serving')
})

/** A raw connection to the server, collecting what it answers. */
async function rawConnection (port: number): Promise<{ socket: Socket, received: () => string, closed: Promise<unknown> }> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let data = ''
  socket.on('data', d => { data += d.toString() })
  socket.on('error', () => {})
  return { socket, received: () => data, closed: once(socket, 'close') }
}

function head (coding: string, length: number, contentType = 'application/json'): string {
  return 'POST /v1/events/call.ended HTTP/1.1\r\nHost: x\r\n' +
    `Content-Type: ${contentType}\r\nContent-Encoding: ${coding}\r\nX-Tenant-ID: ${TENANT}\r\nContent-Length: ${length}\r\n\r\n`
}

t.test('over the socket: a stalled half body gets 408, a vanished client costs nothing, an unread body does not stall the connection',
  async t => {
    const { app } = await build(t, { HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '1000' })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as { port: number }).port
    const gzip = zlib.gzipSync(JSON.stringify(bigCall()))

    const stalled = await rawConnection(port)
    stalled.socket.write(head('gzip', gzip.length) + gzip.subarray(0, gzip.length >> 1).toString('latin1'), 'latin1')
    await stalled.closed
    t.match(stalled.received(), /^HTTP\/1\.1 408 /, 'the usual request timeout')
    t.match(stalled.received(), /"code":"EVG_TIMEOUT"/)

    const gone = await rawConnection(port)
    gone.socket.write(head('gzip', gzip.length) + gzip.subarray(0, gzip.length >> 1).toString('latin1'), 'latin1')
    await new Promise(resolve => setTimeout(resolve, 100))
    gone.socket.destroy()

    // A large body whose Content-Type is refused before it is read: the decoder it was piped into
    // is dropped and the rest of the body read, so the next request on the connection is served.
    const noise = zlib.gzipSync(randomBytes(1024 * 1024))
    const keepAlive = await rawConnection(port)
    keepAlive.socket.write(head('gzip', noise.length, 'text/plain'))
    keepAlive.socket.write(noise)
    keepAlive.socket.write(head('gzip', gzip.length))
    keepAlive.socket.write(gzip)
    // Two answers, the second with its body (or, should the connection stall, what came in 5 s).
    const deadline = Date.now() + 5000
    while (!/^HTTP[\s\S]*\r\n\r\n\{[\s\S]*HTTP[\s\S]*\r\n\r\n\{[\s\S]*\}$/.test(keepAlive.received()) && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const answers = /^HTTP\/1\.1 415 [\s\S]*"code":"EVG_UNSUPPORTED_MEDIA"[\s\S]*HTTP\/1\.1 202 /
    t.match(keepAlive.received(), answers, '415, then the next request on the connection: 202')
    keepAlive.socket.destroy()

    const res = await app.inject(postEncoded('call.ended', 'gzip', gzip))
    t.equal(res.statusCode, 202, 'still serving')
  })

t.test(`at most ${MAX_DECODING} bodies are decoded at once: past that, 503 before the body is read; slots come back`, async t => {
  const { app } = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const gzip = zlib.gzipSync(JSON.stringify(exampleOf('call.ended')))
  const stalled = await Promise.all(Array.from({ length: MAX_DECODING }, () => rawConnection(port)))
  for (const c of stalled) c.socket.write(head('gzip', gzip.length) + gzip.subarray(0, 10).toString('latin1'), 'latin1')
  let refused = await send(port, 'gzip', gzip, true)
  for (let i = 0; i < 100 && refused.status !== 503; i++) {
    await new Promise(resolve => setTimeout(resolve, 20))
    refused = await send(port, 'gzip', gzip, true)
  }
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { code: 'EVG_OVERLOADED', detail: /compressed bodies are being decoded/ })
  t.equal(refused.headers['retry-after'], '1')
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202, 'a plain body is served')

  for (const c of stalled) c.socket.destroy()
  let again = await send(port, 'gzip', gzip, true)
  for (let i = 0; i < 100 && again.status !== 202; i++) {
    await new Promise(resolve => setTimeout(resolve, 20))
    again = await send(port, 'gzip', gzip, true)
  }
  t.equal(again.status, 202, 'the slots of clients that went away are free again')
  const all = await Promise.all(Array.from({ length: MAX_DECODING }, () => send(port, 'gzip', gzip, true)))
  t.same(all.map(r => r.status), all.map(() => 202), `${MAX_DECODING} at once, every one of them`)
})
