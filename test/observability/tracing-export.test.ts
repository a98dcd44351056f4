import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { tracingFromEnv } from '../../src/observability/tracing.js'
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
