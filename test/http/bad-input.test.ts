import type { Test } from 'tap'
import { connect } from 'node:net'
import t from 'tap'
import { TENANT, build, exampleOf, post } from '../helper.js'

const expectProblem = (
  t: Test,
  res: { statusCode: number, headers: Record<string, unknown>, json: () => { code: string } },
  status: number,
  code: string
) => {
  t.equal(res.statusCode, status, `${code}: status`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, `${code}: problem+json`)
  t.equal(res.json().code, code)
}

t.test('each bad input gets its 4xx problem, and the gateway keeps working', async t => {
  const { app, broker } = await build(t, { BODY_LIMIT_BYTES: '2048' })
  expectProblem(t, await app.inject(post('call.ended', '{"call_id": "x",')), 400, 'EVG_VALIDATION')
  expectProblem(t, await app.inject(post('call.ended', '')), 400, 'EVG_VALIDATION')
  expectProblem(t, await app.inject(post('call.ended', '[1,2,3]')), 400, 'EVG_VALIDATION')
  expectProblem(t, await app.inject(post('call.ended', 'null')), 400, 'EVG_VALIDATION')
  expectProblem(
    t,
    await app.inject({
      ...post('call.ended', 'call_id=x'),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-tenant-id': TENANT }
    }),
    415,
    'EVG_UNSUPPORTED_MEDIA'
  )
  expectProblem(
    t,
    await app.inject({ ...post('call.ended', 'hello'), headers: { 'content-type': 'text/plain', 'x-tenant-id': TENANT } }),
    415,
    'EVG_UNSUPPORTED_MEDIA'
  )
  const noType = await app.inject({
    method: 'POST',
    url: '/v1/events/call.ended',
    headers: { 'x-tenant-id': TENANT },
    payload: Buffer.from('{}')
  })
  t.ok([400, 415].includes(noType.statusCode), 'no content type is refused')
  expectProblem(t, await app.inject(post('call.ended', { ...exampleOf('call.ended'), transcript: 'x'.repeat(4000) })), 413, 'EVG_TOO_LARGE')

  const proto = await app.inject(post(
    'call.ended',
    '{"call_id":"c","duration":1,"outcome":"failed","transcript":null,"__proto__":{"admin":true}}'
  ))
  expectProblem(t, proto, 400, 'EVG_VALIDATION')
  t.notOk(({} as Record<string, unknown>).admin, 'no prototype was polluted')
  const ctor = await app.inject(post('call.ended', '{"constructor":{"prototype":{"admin":true}}}'))
  expectProblem(t, ctor, 400, 'EVG_VALIDATION')

  const deep = await app.inject(post(
    'domain.event',
    `{"aggregate_type":"a","aggregate_id":"b","event_type":"c","event_data":${'{"x":'.repeat(300)}1${'}'.repeat(300)}}`
  ))
  expectProblem(t, deep, 400, 'EVG_VALIDATION')
  t.match(deep.json(), { detail: /deeper than 64/ })

  const brackets = await app.inject(post('call.ended', '['.repeat(1500)))
  expectProblem(t, brackets, 400, 'EVG_VALIDATION')

  const dupTenant = await app.inject({
    ...post('call.ended', exampleOf('call.ended')),
    headers: { 'content-type': 'application/json', 'x-tenant-id': [TENANT, TENANT] as unknown as string }
  })
  expectProblem(t, dupTenant, 400, 'EVG_BAD_CONTEXT')
  const badKey = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'x'.repeat(300) }))
  expectProblem(t, badKey, 400, 'EVG_BAD_CONTEXT')
  const badQuery = await app.inject({ method: 'GET', url: '/v1/events?limit=abc', headers: { 'x-tenant-id': TENANT } })
  expectProblem(t, badQuery, 400, 'EVG_VALIDATION')
  const wrongMethod = await app.inject({ method: 'DELETE', url: '/v1/events/call.ended', headers: { 'x-tenant-id': TENANT } })
  expectProblem(t, wrongMethod, 404, 'EVG_NOT_FOUND')

  t.equal(broker.calls, 0, 'nothing bad reached the broker')
  const fine = await app.inject(post('call.ended', exampleOf('call.ended')))
  t.equal(fine.statusCode, 202, 'still serving')
})

t.test('over the socket: huge headers and garbage get problems; the server stays up', async t => {
  const { app } = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const raw = (text: string) => new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    let data = ''
    socket.on('data', d => { data += d.toString() })
    socket.on('end', () => resolve(data))
    socket.on('error', reject)
  })
  const huge = await raw(`POST /v1/events/call.ended HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`)
  t.match(huge, /^HTTP\/1\.1 431 /)
  t.match(huge, /application\/problem\+json/)
  t.match(huge, /"code":"EVG_HEADERS_TOO_LARGE"/)
  const garbage = await raw('BLAH\r\n\r\n')
  t.match(garbage, /^HTTP\/1\.1 400 /)
  t.match(garbage, /"code":"EVG_VALIDATION"/)

  const res = await fetch(`http://127.0.0.1:${port}/v1/events/call.ended`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    body: JSON.stringify(exampleOf('call.ended'))
  })
  t.equal(res.status, 202, 'still serving after bad clients')
})
