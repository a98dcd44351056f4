import pino from 'pino'
import t, { type Test } from 'tap'
import { tracingFromEnv } from '../src/tracing.js'
import { LogCapture } from './helper.js'

// The OTEL_* variables as the SDK reads them (process.env).

// Whatever the shell running the tests has set does not count here.
for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name]

function withEnv (t: Test, vars: Record<string, string>): void {
  Object.assign(process.env, vars)
  t.teardown(() => { for (const name of Object.keys(vars)) delete process.env[name] })
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
  const cases: Record<string, string>[] = [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }, { OTEL_TRACES_EXPORTER: 'otlp' }]
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
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /^OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not available/]
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
