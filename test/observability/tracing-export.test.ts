import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { LogThrottle, boundedText, exportFailureReason, tracingFromEnv } from '../../src/observability/tracing.js'
import { LogCapture, exampleOf, post, testConfig } from '../helper.js'

// The OTEL_* variables as the SDK reads them (process.env), and what reaches a collector.

// Whatever the shell running the tests has set does not count here.
for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name]

function withEnv (t: Test, vars: Record<string, string>): void {
  Object.assign(process.env, vars)
  t.teardown(() => { for (const name of Object.keys(vars)) delete process.env[name] })
}

/** An OTLP/HTTP receiver: what each export request carried. */
async function collector (t: Test) {
  const exports: { url: string | undefined, contentType: string | undefined, body: OtlpTraces }[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', chunk => { body += chunk })
    req.on('end', () => {
      exports.push({ url: req.url, contentType: req.headers['content-type'], body: JSON.parse(body) })
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, exports }
}

interface OtlpAttribute { key: string, value: { stringValue?: string } }
interface OtlpTraces {
  resourceSpans: {
    resource: { attributes: OtlpAttribute[] },
    scopeSpans: { spans: { name: string, traceId: string, parentSpanId?: string }[] }[]
  }[]
}

const silent = () => pino({ level: 'silent' })

t.test('off unless asked for: no endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none', async t => {
  const cases: Record<string, string>[] = [
    {},
    { OTEL_SERVICE_NAME: 'gw', OTEL_TRACES_SAMPLER: 'always_on' },
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' },
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces', OTEL_TRACES_EXPORTER: 'none' }
  ]
  for (const vars of cases) {
    await t.test(JSON.stringify(vars), async t => {
      withEnv(t, vars)
      t.equal(tracingFromEnv(silent()).tracer, undefined)
    })
  }
})

t.test('on with an endpoint, or with OTEL_TRACES_EXPORTER=otlp alone', async t => {
  const cases: Record<string, string>[] = [
    { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' },
    { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' },
    { OTEL_TRACES_EXPORTER: 'otlp' }
  ]
  for (const vars of cases) {
    await t.test(JSON.stringify(vars), async t => {
      withEnv(t, vars)
      const tracing = tracingFromEnv(silent())
      t.ok(tracing.tracer)
      await tracing.shutdown()
    })
  }
})

t.test('what cannot work stops the start, naming the variable and not echoing its value', async t => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, /^OTEL_TRACES_EXPORTER: /],
    [{ OTEL_TRACES_EXPORTER: 'otlp,console' }, /^OTEL_TRACES_EXPORTER: /],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector-s3cr3t:4318' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:\/\/ or https:\/\/ URL/],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      /^OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not available/
    ]
  ]
  for (const [vars, message] of cases) {
    await t.test(JSON.stringify(vars), async t => {
      withEnv(t, vars)
      const err = t.throws(() => tracingFromEnv(silent()), { name: 'ConfigError', message })
      t.notMatch((err as Error).message, 's3cr3t')
    })
  }
})

t.test('a protocol other than http/json is said at start, and spans go as JSON all the same', async t => {
  withEnv(t, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' })
  const logs = new LogCapture()
  const tracing = tracingFromEnv(pino(logs))
  t.ok(tracing.tracer)
  t.match(logs.records, [{ level: 40, component: 'opentelemetry', msg: /exported as http\/json/ }])
  await tracing.shutdown()
})

t.test('OTLP export: closing the app sends the spans, under service.name event-gateway and the resource attributes', async t => {
  const otlp = await collector(t)
  withEnv(t, { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test' })
  const app = await buildApp(testConfig(t), { broker: new MemoryBroker() })
  await app.ready()
  const res = await app.inject(post(
    'call.ended',
    exampleOf('call.ended'),
    { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }
  ))
  t.equal(res.statusCode, 202)
  t.equal(otlp.exports.length, 0, 'batched, not sent one by one')
  await app.close()

  t.equal(otlp.exports.length, 1, 'flushed on close')
  const { url, contentType, body } = otlp.exports[0] as (typeof otlp.exports)[number]
  t.equal(url, '/v1/traces')
  t.equal(contentType, 'application/json')
  const resource = body.resourceSpans[0]?.resource.attributes ?? []
  const attribute = (key: string) => resource.find(a => a.key === key)?.value.stringValue
  t.equal(attribute('service.name'), 'event-gateway')
  t.equal(attribute('deployment.environment.name'), 'test')
  const spans = body.resourceSpans.flatMap(r => r.scopeSpans.flatMap(s => s.spans))
  t.same(spans.map(s => s.name).sort(), ['POST /v1/events/call.ended', 'send local'])
  t.ok(spans.every(s => s.traceId === '4bf92f3577b34da6a3ce929d0e0e4736'), 'the caller\'s trace')
})

t.test('OTEL_SERVICE_NAME names the service', async t => {
  const otlp = await collector(t)
  withEnv(t, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${otlp.url}/custom/traces`, OTEL_SERVICE_NAME: 'events-eu' })
  const app = await buildApp(testConfig(t), { broker: new MemoryBroker() })
  await app.ready()
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
  await app.close()
  t.equal(otlp.exports[0]?.url, '/custom/traces', 'the signal\'s endpoint is used as it is')
  t.ok(
    otlp.exports[0]?.body.resourceSpans[0]?.resource.attributes.some(a => a.key === 'service.name' && a.value.stringValue === 'events-eu')
  )
})

/** A collector that refuses every export, answering `status` with the request's headers in its body, as some proxies do. */
async function refusingCollector (t: Test, status: number, body: (headers: Record<string, unknown>) => string) {
  const seen: Record<string, unknown>[] = []
  let arrived = () => {}
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push(req.headers)
      res.writeHead(status, { 'content-type': 'text/plain' }).end(body(req.headers))
      arrived()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  /** Resolves once `count` export requests have been answered. */
  const requests = async (count: number) => {
    while (seen.length < count) await new Promise<void>(resolve => { arrived = resolve })
  }
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, requests }
}

const TOKEN = 's3cr3t-otlp-token-9f2c'

/** The gateway on a collector that refuses: three exports, one at a time, then closed; its opentelemetry log lines. */
async function refusedExports (t: Test, status: number, body: (headers: Record<string, unknown>) => string) {
  const otlp = await refusingCollector(t, status, body)
  withEnv(t, {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${otlp.url}/v1/traces`,
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer ${TOKEN}`,
    OTEL_BSP_SCHEDULE_DELAY: '10'
  })
  const logs = new LogCapture()
  const app = await buildApp(testConfig(t, { LOG_LEVEL: 'warn' }), { broker: new MemoryBroker(), logStream: logs })
  await app.ready()
  for (let i = 1; i <= 3; i++) {
    t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
    await otlp.requests(i)
    // The failure is reported once the exporter has read the answer: a turn or two after the collector sent it.
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  await app.close()
  t.equal(otlp.seen[0]?.authorization, `Bearer ${TOKEN}`, 'the collector was sent the credential')
  const lines = logs.lines.filter(l => l.includes('"component":"opentelemetry"'))
  return { lines, records: lines.map(l => JSON.parse(l) as Record<string, unknown>), exports: otlp.seen.length }
}

/** Each line bounded, and none with the credential or anything of the collector's answer. */
function checkLines (t: Test, lines: string[]): void {
  for (const line of lines) {
    t.ok(line.length <= 600, `a bounded line (${line.length} characters)`)
    // Not t.notMatch: its report would print the line, and the line is the problem when it fails.
    t.notOk(line.includes(TOKEN), 'never the credential')
    t.notOk(line.includes('denied'), 'never the collector\'s answer')
  }
}

for (const status of [401, 500]) {
  t.test(`a collector answering ${status} with the request's headers: a short line, one a minute, no body, no credential`, async t => {
    const { lines, records, exports } = await refusedExports(t, status, headers => `denied ${JSON.stringify(headers)} ${'x'.repeat(5000)}`)
    t.ok(exports >= 3, `${exports} exports refused`)
    checkLines(t, lines)
    t.match(records[0], { level: 50, reason: `HTTP ${status} `, msg: new RegExp(`^spans not exported: HTTP ${status} `) })
    // The first failure at once; those within the minute after it counted, and said at close on one more line (with
    // a last flush at close that fails, a line saying so): every failure accounted for, not a line each.
    t.ok(records.length <= 3, `${records.length} lines`)
    t.match(records[1], { level: 50, suppressed: Number, msg: / times since the last line of its kind\)$/ })
    const closing = records.slice(2)
    t.match(closing, closing.map(() => ({ msg: /^could not export the last spans: HTTP / })))
    const counted = records.reduce((n, r) => n + (typeof r.suppressed === 'number' ? r.suppressed : 1), 0)
    t.equal(counted, exports, 'every refused export is counted once')
  })
}

t.test('a collector answering 200 with something else than OTLP JSON: the complaint quotes none of it', async t => {
  // JSON.parse quotes what it cannot read in its message, and the SDK logs that message.
  const { lines, records } = await refusedExports(t, 200, headers => `denied ${String(headers.authorization)}`)
  checkLines(t, lines)
  t.match(records[0], { level: 40, msg: /^Failed to parse trace export response: / })
  t.notOk(lines.some(l => l.includes('Bearer')), 'not even the start of the credential')
})

t.test('an export failure in a few words: the status, the network code, or the SDK\'s own message, bounded', async t => {
  const refused = Object.assign(new Error('Unauthorized'), { name: 'OTLPExporterError', code: 401, data: `echo Bearer ${TOKEN}` })
  t.equal(exportFailureReason(refused), 'HTTP 401 Unauthorized')
  t.equal(exportFailureReason(Object.assign(new Error('Not ok'), { code: 499 })), 'HTTP 499', 'a status without a standard name')
  t.equal(exportFailureReason(Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:4318'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED')
  t.equal(exportFailureReason(new Error('Request timed out')), 'Request timed out')
  t.equal(exportFailureReason('BatchSpanProcessor: span export failed'), 'BatchSpanProcessor: span export failed')
  t.equal(boundedText('Unexpected token \'B\', "Bearer s3c"... is not valid JSON'), 'Unexpected token \'B\', "…"... is not valid JSON')
  t.equal(boundedText('first\nsecond "open quote to the end'), 'first second "…"')
  t.equal(boundedText('y'.repeat(1000)).length, 160)
})

t.test('the throttle: one line at once, then one per interval with the count of the others, per kind', async t => {
  const logs = new LogCapture()
  const throttle = new LogThrottle(pino(logs), 100)
  const failed = (reason: string) => throttle.report('export', { level: 'error', msg: `spans not exported: ${reason}`, fields: { reason } })
  failed('HTTP 500 Internal Server Error')
  failed('ECONNREFUSED')
  failed('ECONNREFUSED')
  throttle.report('Dropped # spans because maxQueueSize reached', { level: 'warn', msg: 'Dropped 3 spans because maxQueueSize reached' })
  t.match(logs.records, [
    {
      level: 50,
      component: 'opentelemetry',
      reason: 'HTTP 500 Internal Server Error',
      msg: 'spans not exported: HTTP 500 Internal Server Error'
    },
    { level: 40, component: 'opentelemetry', msg: 'Dropped 3 spans because maxQueueSize reached' }
  ])
  t.equal(logs.lines.length, 2, 'the repeats wait for the end of the interval')
  await new Promise(resolve => setTimeout(resolve, 150))
  t.equal(logs.lines.length, 3, 'at its end, one line for them; nothing for a kind that did not repeat')
  t.match(logs.records[2], {
    level: 50,
    reason: 'ECONNREFUSED',
    suppressed: 2,
    msg: 'spans not exported: ECONNREFUSED (2 times since the last line of its kind)'
  })
  failed('ECONNREFUSED')
  t.equal(logs.lines.length, 3, 'a line was written within the interval: this one waits too')
  await new Promise(resolve => setTimeout(resolve, 150))
  t.match(logs.records[3], { suppressed: 1 })
  await new Promise(resolve => setTimeout(resolve, 150))
  failed('ECONNREFUSED')
  t.match(logs.records[4], { msg: 'spans not exported: ECONNREFUSED' })
  t.notOk('suppressed' in (logs.records[4] as object), 'a quiet interval later, a failure is written at once again')

  // Kinds beyond the first 32 share one window, so that varied messages cannot flood the log either.
  for (let i = 0; i < 40; i++) throttle.report(`kind ${i}`, { level: 'warn', msg: `kind ${i}` })
  t.equal(logs.lines.length, 5 + 31 + 1, '31 kinds beside export, each a line; the others share one window, and its first line')
  throttle.close()
  t.match(logs.records.at(-1), { msg: 'kind 39 (8 times since the last line of its kind)', suppressed: 8 }, 'close says what was counted')
})
