import { readFileSync } from 'node:fs'
import t from 'tap'
import { ConfigError, ConfigSchema, drainSeconds, eventTypeAllowList, listenHost, loadConfig } from '../../src/config/index.js'
import { codes, readDoc, tableRows } from '../markdown.js'

const names = Object.keys(ConfigSchema.properties)
// Read by the AWS and OpenTelemetry SDKs themselves, not by ConfigSchema; documented all the same.
const AWS_SDK_VARS = ['AWS_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_SQS', 'AWS_ENDPOINT_URL_EVENTBRIDGE']
const OTEL_SDK_VARS = [
  'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_TRACES_EXPORTER', 'OTEL_SDK_DISABLED',
  'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG'
]
const SDK_VARS = [...AWS_SDK_VARS, ...OTEL_SDK_VARS]

t.test('defaults are the documented ones', async t => {
  const c = loadConfig({})
  t.match(c, {
    PORT: 3000,
    LOG_LEVEL: 'info',
    BROKER: 'local',
    DELIVERY_MODE: 'sync',
    DATA_DIR: './data',
    EVENT_SOURCE: 'event-gateway',
    TENANT_ID_FORMAT: 'uuid',
    ALLOW_MOCK_CONTEXT: false,
    BODY_LIMIT_BYTES: 262144,
    BATCH_MAX_EVENTS: 100,
    PUBLISH_TIMEOUT_MS: 5000,
    RETRY_MAX_ATTEMPTS: 3,
    RETRY_BASE_MS: 100,
    RETRY_MAX_MS: 2000,
    AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
    AMQP_EXCHANGE: 'events',
    EVENTBRIDGE_BUS_NAME: 'default'
  })
  t.match(c, {
    OUTBOX_MAX_EVENTS: 1000000,
    OUTBOX_MAX_BYTES: 1073741824,
    OUTBOX_MAX_ATTEMPTS: 10,
    OUTBOX_BATCH_SIZE: 100,
    OUTBOX_RETRY_MAX_MS: 30000,
    OUTBOX_LEASE_MS: 30000
  })
  t.equal(c.SPOOL_URL, undefined, 'the embedded outbox unless SPOOL_URL')
  // Computed where unset: the loopback while authentication is off; a drain only on Kubernetes.
  t.equal(listenHost(c), '127.0.0.1')
  t.equal(listenHost(loadConfig({ API_KEYS_FILE: 'keys.json' })), '0.0.0.0')
  t.equal(listenHost(loadConfig({ HOST: '::' })), '::')
  t.equal(drainSeconds(c, {}), 0)
  t.equal(drainSeconds(c, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }), 5)
  t.equal(drainSeconds(loadConfig({ SHUTDOWN_DRAIN_SECONDS: '2' }), { KUBERNETES_SERVICE_HOST: '10.96.0.1' }), 2)
  t.equal(eventTypeAllowList(c), undefined)
  t.same(eventTypeAllowList(loadConfig({ EVENT_TYPES: ' call.ended, ,call.started ' })), ['call.ended', 'call.started'])
})

t.test('bad values name the variable', async t => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: '70000' }, /PORT: must be <= 65535/],
    [{ PORT: 'abc' }, /PORT: must be integer/],
    [
      { BROKER: 'kafka' },
      /^Invalid configuration:\n {2}BROKER: must be equal to one of the allowed values \(local, rabbitmq, sqs, eventbridge\)$/
    ],
    [{ TENANT_ID_FORMAT: 'email' }, /TENANT_ID_FORMAT/],
    [{ ALLOW_MOCK_CONTEXT: 'maybe' }, /ALLOW_MOCK_CONTEXT: must be boolean/],
    [{ ALLOW_MOCK_CONTEXT: 'true' }, /MOCK_TENANT_ID: is required when ALLOW_MOCK_CONTEXT=true/],
    [{ ALLOW_MOCK_CONTEXT: 'true', MOCK_TENANT_ID: 'acme' }, /MOCK_TENANT_ID: must be a valid tenant id/],
    [{ RETRY_BASE_MS: '500', RETRY_MAX_MS: '100' }, /RETRY_BASE_MS: must not be larger than RETRY_MAX_MS/],
    [{ BROKER: 'sqs' }, /SQS_QUEUE_URL: is required when BROKER=sqs/],
    [{ DELIVERY_MODE: 'async' }, /^Invalid configuration:\n {2}DELIVERY_MODE: must be equal to one of the allowed values \(sync, spool\)$/],
    // the outbox's URL may hold a password too: refused without it
    [{ SPOOL_URL: 'mysql://gateway:secretpw@db:3306/events' }, /SPOOL_URL: must match pattern/],
    [
      { SPOOL_URL: 'postgres://gateway:secretpw@db:abc/events' },
      /^Invalid configuration:\n {2}SPOOL_URL: must be a postgres:\/\/ or postgresql:\/\/ URL$/
    ],
    [{ OUTBOX_MAX_BYTES: '1024' }, /OUTBOX_MAX_BYTES: must be >= 1048576/],
    [{ OUTBOX_BATCH_SIZE: '0' }, /OUTBOX_BATCH_SIZE: must be >= 1/],
    [{ SPOOL_URL: 'postgres://db/events', OUTBOX_LEASE_MS: '10000' }, /OUTBOX_LEASE_MS: must be more than twice PUBLISH_TIMEOUT_MS/],
    [{ BATCH_MAX_EVENTS: '0' }, /BATCH_MAX_EVENTS: must be >= 1/],
    // every envelope would fail CloudEvents validation downstream
    [{ EVENT_SOURCE: 'not a uri ref' }, /EVENT_SOURCE: must match format "uri-reference"/],
    // the URL may hold a password: the message never echoes it
    [
      { STATE_URL: 'redis://:secretpw@127.0.0.1:abc/0' },
      /^Invalid configuration:\n {2}STATE_URL: must be a redis:\/\/ or rediss:\/\/ URL[^\n]*$/
    ],
    [{ STATE_URL: 'http://127.0.0.1:6379' }, /STATE_URL: must match pattern/],
    [{ STATE_URL: 'redis://:secretpw@host/db-one' }, /STATE_URL: must be a redis:\/\//],
    [{ RATE_LIMIT_PER_TENANT: '0.0001' }, /RATE_LIMIT_PER_TENANT: must be 0 \(no limit\) or at least 0.001/],
    [{ RATE_LIMIT_PER_TENANT: '-1' }, /RATE_LIMIT_PER_TENANT: must be >= 0/]
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
    try {
      loadConfig(env)
    } catch (err) {
      t.notMatch((err as Error).message, /secretpw/, 'no value echoed')
    }
  }
  t.ok(new ConfigError('x') instanceof Error)
})

t.test('spool mode is accepted: the embedded outbox, or PostgreSQL at SPOOL_URL', async t => {
  t.match(loadConfig({ DELIVERY_MODE: 'spool' }), { DELIVERY_MODE: 'spool', DATA_DIR: './data' })
  const urls = [
    'postgres://postgres@127.0.0.1:5432/test',
    'postgresql://gateway:pw@db.internal/events?options=-c%20search_path%3Dgateway',
    ''
  ]
  for (const url of urls) {
    t.equal(loadConfig({ DELIVERY_MODE: 'spool', SPOOL_URL: url }).SPOOL_URL, url, url)
  }
  t.doesNotThrow(
    () => loadConfig({ SPOOL_URL: 'postgres://db/events', PUBLISH_TIMEOUT_MS: '20000', OUTBOX_LEASE_MS: '40001' }),
    'a lease above twice the publish deadline'
  )
  t.doesNotThrow(() => loadConfig({ PUBLISH_TIMEOUT_MS: '20000' }), 'without SPOOL_URL there is no lease: a long publish deadline is fine')
})

t.test('values are not echoed, so a secret in the environment never reaches the message', async t => {
  try {
    loadConfig({ AMQP_URL: 'amqp://svc:s3cr3t-pw@rabbit:5672', PORT: 's3cr3t-pw', RETRY_MAX_ATTEMPTS: 's3cr3t-pw' })
    t.fail('should have thrown')
  } catch (err) {
    t.match((err as Error).message, /PORT/)
    t.notMatch((err as Error).message, 's3cr3t-pw')
  }
})

t.test('.env.example lists every variable, and only real ones', async t => {
  const text = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8')
  const listed = [...text.matchAll(/^#?\s?([A-Z][A-Z0-9_]+)=/gm)].map(m => m[1])
  for (const name of [...names, ...SDK_VARS]) t.ok(listed.includes(name), `${name} is in .env.example`)
  for (const name of listed) t.ok(names.includes(name as string) || SDK_VARS.includes(name as string), `${name} is a real variable`)
  // the example's uncommented values are valid defaults
  const active = Object.fromEntries([...text.matchAll(/^([A-Z][A-Z0-9_]+)=(.*)$/gm)].map(m => [m[1], m[2]]))
  t.doesNotThrow(() => loadConfig(active as Record<string, string>))
})

interface PropertySchema { default?: unknown, minimum?: number, maximum?: number, enum?: unknown[] }

/** Variables whose default depends on the rest (src/config/index.ts: listenHost, drainSeconds): the table says how. */
const COMPUTED: Record<string, string> = {
  HOST: '`127.0.0.1` without `API_KEYS_FILE`, else `0.0.0.0`',
  SHUTDOWN_DRAIN_SECONDS: '`5` on Kubernetes, else `0`'
}

t.test('docs/configuration.md has a row for every variable, with its default and allowed values, and for no other', async t => {
  // One row per variable: | `NAME` | default | allowed | meaning |
  const rows = tableRows(readDoc('docs/configuration.md')).filter(r => /^`[A-Z][A-Z0-9_]+`$/.test(r[0] ?? ''))
  const documented = new Map(rows.map(r => [codes(r[0] as string)[0] as string, r]))
  t.equal(documented.size, rows.length, 'each variable has one row')
  for (const name of [...names, ...SDK_VARS]) t.ok(documented.has(name), `${name} is documented`)
  for (const name of documented.keys()) t.ok(names.includes(name) || SDK_VARS.includes(name), `${name} is a real variable`)
  for (const name of names) {
    const row = documented.get(name)
    if (row === undefined) continue
    const [, defaultCell = '', allowedCell = ''] = row
    const schema = (ConfigSchema.properties as Record<string, PropertySchema>)[name] as PropertySchema
    if (COMPUTED[name] !== undefined) t.equal(defaultCell, COMPUTED[name], `${name} default, computed`)
    else if (schema.default === undefined) t.equal(defaultCell, 'none', `${name} has no default`)
    else t.equal(defaultCell, `\`${String(schema.default)}\``, `${name} default`)
    if (schema.minimum !== undefined) t.equal(allowedCell, `\`${schema.minimum}..${schema.maximum}\``, `${name} range`)
    if (schema.enum !== undefined) t.same(codes(allowedCell), schema.enum, `${name} values`)
  }
})
