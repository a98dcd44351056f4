import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { loadRouting } from '../../src/routing/index.js'
import { createAjv } from '../../src/validation/index.js'
import { build, dataDir, testConfig } from '../helper.js'

const types = BUILTIN_ENTRIES
const typeNames = BUILTIN_ENTRIES.map(e => e.type)

function file (t: Test, content: unknown): string {
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

function routing (t: Test, content: unknown, env: Record<string, string> = {}, configEnv: Record<string, string> = {}) {
  const path = file(t, content)
  return { path, load: () => loadRouting(testConfig(t, { ROUTES_FILE: path, ...configEnv }), types, createAjv(), env) }
}

const local = { broker: 'local' }
const everything = [{ types: ['*'], to: ['store'] }]

t.test('without ROUTES_FILE: one destination from BROKER and its variables, for every type', async t => {
  const rabbit = loadRouting(testConfig(t, { BROKER: 'rabbitmq', AMQP_EXCHANGE: 'orders', EVENT_SOURCE: 'svc' }), types, createAjv())
  t.same(rabbit.destinations.map(({ formats: _formats, ...d }) => d), [{
    name: 'rabbitmq',
    broker: 'rabbitmq',
    url: 'amqp://guest:guest@127.0.0.1:5672',
    exchange: 'orders',
    alternateExchange: 'orders.unrouted',
    envelope: 'cloudevents',
    envelopeOptions: { source: 'svc' },
    mode: 'sync'
  }])
  t.same([...rabbit.destinations[0]?.formats.keys() ?? []], typeNames, 'a wire format for every type it gets')
  t.same(rabbit.routes.get('call.ended'), ['rabbitmq'])
  t.equal(rabbit.routes.size, typeNames.length)
  const off = loadRouting(testConfig(t, { BROKER: 'rabbitmq', AMQP_ALTERNATE_EXCHANGE: '' }), types, createAjv())
  t.notOk('alternateExchange' in (off.destinations[0] as object), 'AMQP_ALTERNATE_EXCHANGE= still turns it off')
  const SQS_QUEUE_URL = 'https://sqs.eu-central-1.amazonaws.com/123456789012/survey-events.fifo'
  const sqs = loadRouting(testConfig(t, { BROKER: 'sqs', SQS_QUEUE_URL }), types, createAjv())
  t.match(sqs.destinations, [{ name: 'sqs', broker: 'sqs', queueUrl: /survey-events\.fifo$/, maxMessageBytes: 262144 }])
  // what cannot heal stops the start, naming the variable
  t.throws(
    () => loadRouting(testConfig(t, { BROKER: 'rabbitmq', AMQP_URL: 'not a url' }), types, createAjv()),
    { name: 'ConfigError', message: 'Invalid configuration: AMQP_URL: must be an amqp:// or amqps:// URL' }
  )
  t.throws(
    () => loadRouting(testConfig(t, { BROKER: 'sqs', SQS_QUEUE_URL: 'garbage' }), types, createAjv()),
    { name: 'ConfigError', message: /^Invalid configuration: SQS_QUEUE_URL: must be an SQS queue URL/ }
  )
})

t.test('the first matching route wins; several destinations fan out; defaults are filled in', async t => {
  const { load } = routing(t, {
    destinations: {
      ocelot: {
        broker: 'rabbitmq',
        url: 'amqp://u:p@rabbit:5672/vh',
        exchange: 'ocelot.events',
        envelope: 'ocelot',
        source: 'communications',
        module: 'cc-lite'
      },
      surveys: {
        broker: 'sqs',
        queueUrl: 'http://sqs.us-east-1.127.0.0.1:4566/000000000000/s.fifo',
        region: 'eu-central-1',
        maxMessageBytes: 2048
      },
      bus: { broker: 'eventbridge', busName: 'batch-events' },
      store: local
    },
    routes: [
      { types: ['call.ended'], to: ['ocelot'] },
      { types: ['call.*', 'campaign.completed'], to: ['ocelot', 'store', 'ocelot'] },
      { types: ['survey.*'], to: ['surveys'] },
      { types: ['batch.*'], to: ['bus'] },
      { types: ['*'], to: ['store'] }
    ]
  })
  const r = load()
  t.same(r.routes.get('call.ended'), ['ocelot'], 'the first route that matches')
  t.same(r.routes.get('call.started'), ['ocelot', 'store'], 'fan-out, each destination once')
  t.same(r.routes.get('campaign.completed'), ['ocelot', 'store'])
  t.same(r.routes.get('survey.refused'), ['surveys'])
  t.same(r.routes.get('audit.recorded'), ['store'])
  t.match(r.destinations, [
    {
      name: 'ocelot',
      broker: 'rabbitmq',
      url: 'amqp://u:p@rabbit:5672/vh',
      alternateExchange: 'ocelot.events.unrouted',
      envelope: 'ocelot',
      envelopeOptions: { source: 'communications', module: 'cc-lite' }
    },
    {
      name: 'surveys',
      maxMessageBytes: 2048,
      region: 'eu-central-1',
      envelope: 'cloudevents',
      envelopeOptions: { source: 'event-gateway' }
    },
    { name: 'bus', busName: 'batch-events', maxEntryBytes: 262144 },
    { name: 'store', broker: 'local' }
  ])
  t.same(r.warnings, [])
})

t.test('${NAME} references come from the environment; a missing one names the field, never a value', async t => {
  const content = {
    destinations: { q: { broker: 'rabbitmq', url: 'amqp://svc:${AMQP_PASSWORD}@${AMQP_HOST:-127.0.0.1}:5672', exchange: 'x' } },
    routes: [{ types: ['*'], to: ['q'] }]
  }
  const ok = routing(t, content, { AMQP_PASSWORD: 's3cr3t' }).load()
  t.match(ok.destinations[0], { url: 'amqp://svc:s3cr3t@127.0.0.1:5672' })
  const { load, path } = routing(t, content, { AMQP_HOST: 'rabbit' })
  t.throws(load, {
    name: 'ConfigError',
    message: `ROUTES_FILE: ${path} is not valid:\n  destinations.q.url: \${AMQP_PASSWORD} is not set in the environment`
  })
})

t.test('a bad file stops the start with a message naming the file and every field', async t => {
  const cases: [unknown, RegExp][] = [
    ['{ not json', /ROUTES_FILE: cannot read .*routes\.json: Unexpected token|ROUTES_FILE: cannot read .*routes\.json: .*JSON/],
    [{ destinations: {}, routes: everything }, /destinations: must NOT have fewer than 1 properties/],
    [{ destinations: { store: local }, routes: [] }, /routes: must NOT have fewer than 1 items/],
    [
      { destinations: { store: { broker: 'nats' } }, routes: everything },
      /destinations\.store\.broker: must be one of: rabbitmq, sqs, eventbridge, kafka, local|destinations\.store\.broker/
    ],
    [{ destinations: { k: { broker: 'kafka' } }, routes: [{ types: ['*'], to: ['k'] }] }, /destinations\.k\.topic: is required/],
    [
      { destinations: { k: { broker: 'kafka', topic: 't', brokers: 'no-port' } }, routes: [{ types: ['*'], to: ['k'] }] },
      /destinations\.k\.brokers: must match pattern/
    ],
    [{ destinations: { q: { broker: 'rabbitmq' } }, routes: [{ types: ['*'], to: ['q'] }] }, /destinations\.q\.exchange: is required/],
    [
      { destinations: { q: { broker: 'rabbitmq', exchange: 'x', envelope: 'avro' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.envelope/
    ],
    [
      { destinations: { q: { broker: 'sqs', queueUrl: 'x', exchange: 'y' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.exchange: is not an allowed property/
    ],
    [{ destinations: { store: local }, routes: [{ types: ['*'], to: ['nowhere'] }] }, /routes\.0\.to: no destination named 'nowhere'/],
    [{ destinations: { store: local, other: local }, routes: everything }, /at most one local destination.*store, other/],
    [{ destinations: { 'Bad Name': local, store: local }, routes: everything }, /destinations\.Bad Name: a destination name must match/],
    [{ destinations: { store: local }, routes: [{ types: ['call.#'], to: ['store'] }] }, /routes\.0\.types\.0: must match pattern/],
    [
      { destinations: { store: local }, routes: [{ types: ['call.*'], to: ['store'] }] },
      /no route for event type\(s\) survey\.completed, .*evaluation\.failed; add a route/
    ],
    [
      { destinations: { q: { broker: 'rabbitmq', url: 'not a url', exchange: 'x' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.url: must be an amqp:\/\/ or amqps:\/\/ URL/
    ],
    [
      { destinations: { q: { broker: 'sqs', queueUrl: 'garbage' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.queueUrl: must be an SQS queue URL/
    ],
    [
      { destinations: { store: local }, routes: [{ types: ['*'], to: ['store', 'constructor'] }] },
      /routes\.0\.to: no destination named 'constructor'/
    ],
    [
      { destinations: { q: { broker: 'rabbitmq', exchange: 'amq.topic' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.exchange: must match pattern/
    ],
    // checked after expansion: an empty default is an empty exchange
    [
      { destinations: { q: { broker: 'rabbitmq', exchange: '${EXCHANGE:-}' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.exchange: must NOT have fewer than 1 characters/
    ],
    [
      { destinations: { q: { broker: 'rabbitmq', url: 'amqp://svc:${PW@rabbit', exchange: 'x' } }, routes: [{ types: ['*'], to: ['q'] }] },
      /destinations\.q\.url: has a \$\{ without its closing \}/
    ]
  ]
  for (const [content, message] of cases) {
    const { load, path } = routing(t, content)
    t.throws(load, { name: 'ConfigError', message }, JSON.stringify(content))
    try {
      load()
    } catch (err) {
      t.match((err as Error).message, path, 'names the file')
    }
  }
})

t.test('warnings: a destination no route uses is not connected; a route that matches nothing', async t => {
  const { load } = routing(t, {
    destinations: { store: local, spare: { broker: 'rabbitmq', exchange: 'x' } },
    routes: [{ types: ['*'], to: ['store'] }, { types: ['call.*'], to: ['spare'] }]
  })
  const r = load()
  t.same(r.destinations.map(d => d.name), ['store'])
  t.match(r.warnings, [/route 1 \(call\.\*\) matches no event type/, /destination 'spare' is used by no route; it is not connected/])
})

t.test('the server refuses to start on a bad routes file, and the app reports unrouted types', async t => {
  const path = file(t, { destinations: { store: local }, routes: [{ types: ['call.*'], to: ['store'] }] })
  await t.rejects(build(t, { ROUTES_FILE: path }), { name: 'ConfigError', message: /no route for event type/ })
  const narrowed = file(t, { destinations: { store: local }, routes: [{ types: ['call.*'], to: ['store'] }] })
  const { app } = await build(t, { ROUTES_FILE: narrowed, EVENT_TYPES: 'call.ended,call.started' })
  t.same(app.destinations.map(d => d.name), ['store'], 'a narrowed catalog needs only its own routes')
})
