import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { BUILTIN_ENTRIES, Catalog, routingKeyFor, selectEntries } from '../../src/catalog/index.js'
import { loadExternalEntries } from '../../src/catalog/external.js'
import { ConfigError } from '../../src/config/index.js'
import { createAjv } from '../../src/validation/index.js'
import { build, exampleOf, post } from '../helper.js'

const SEED_TYPES = [
  'survey.completed', 'survey.refused', 'survey.not_reached',
  'batch.processing.completed',
  'audit.recorded', 'notification.requested', 'domain.event',
  'call.started', 'call.ended', 'call.transcribed', 'campaign.completed', 'sentiment.analyzed',
  'speaker.onboarded', 'speaker.updated', 'speaker.bucket_reassigned', 'draft.ingested',
  'draft.correction_vector_created', 'draft.correction_vector_updated', 'rag.dfn_generated',
  'evaluation.started', 'evaluation.completed', 'evaluation.failed'
]

t.test('the catalog holds every seed type, each with a valid first example and unknown fields refused', async t => {
  t.same(BUILTIN_ENTRIES.map(e => e.type).sort(), [...SEED_TYPES].sort())
  const catalog = new Catalog(BUILTIN_ENTRIES, createAjv())
  for (const entry of catalog.list()) {
    t.ok(entry.validate(exampleOf(entry.type)), `${entry.type} example is valid`)
    t.notOk(entry.validate({ ...exampleOf(entry.type), surprise: 1 }), `${entry.type} refuses unknown fields`)
    t.ok(entry.description.length > 0)
  }
})

t.test('routing keys, dedupe keys and never-logged fields follow the seeds', async t => {
  const byType = Object.fromEntries(BUILTIN_ENTRIES.map(e => [e.type, e]))
  for (const type of ['call.started', 'call.ended', 'call.transcribed', 'campaign.completed', 'sentiment.analyzed']) {
    t.equal(byType[type]?.routingKey, `comms.${type}`)
  }
  for (const e of BUILTIN_ENTRIES.filter(e => e.domain === 'drafts')) t.equal(e.routingKey, e.type)
  t.equal(byType['audit.recorded']?.routingKey, 'audit.events')
  t.equal(byType['notification.requested']?.routingKey, 'notification.events')
  for (const type of ['survey.completed', 'survey.refused', 'survey.not_reached']) t.equal(byType[type]?.dedupeKey, 'call_id')
  t.same(byType['batch.processing.completed']?.sensitive, ['raw_transcript', 'cleaned_transcript'])
  t.ok(byType['call.ended']?.sensitive?.includes('transcript'))
  t.ok(byType['call.transcribed']?.sensitive?.includes('transcript'))
})

t.test('routing key templates fill one safe word per field', async t => {
  const entry = BUILTIN_ENTRIES.find(e => e.type === 'domain.event')!
  t.equal(routingKeyFor(entry, { aggregate_type: 'user', event_type: 'user_created' }), 'domain.user.user_created')
  t.equal(routingKeyFor(entry, { aggregate_type: 'a.b#', event_type: 7 }), 'domain.a_b_.7')
  t.equal(routingKeyFor(entry, {}), 'domain._._')
})

t.test('EVENT_TYPES narrows the catalog; an unknown name is a config error', async t => {
  t.same(selectEntries([], ['call.ended']).map(e => e.type), ['call.ended'])
  t.throws(() => selectEntries([], ['call.ended', 'nope']), new ConfigError('EVENT_TYPES: unknown event type(s): nope'))
})

const orderPlaced = {
  type: 'order.placed',
  description: 'An order was placed.',
  routingKey: 'shop.order.{region}',
  dedupeKey: 'order_id',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['order_id', 'region'],
    properties: { order_id: { type: 'string' }, region: { type: 'string' } },
    examples: [{ order_id: 'o-1', region: 'eu' }]
  }
}

t.test('EVENT_CATALOG_DIR adds types from JSON Schema files', async t => {
  const dir = t.testdir({ 'order.json': JSON.stringify(orderPlaced), 'README.txt': 'ignored' })
  const { app, broker } = await build(t, { EVENT_CATALOG_DIR: dir })
  const res = await app.inject(post('order.placed', { order_id: 'o-1', region: 'eu' }))
  t.equal(res.statusCode, 202)
  t.equal(broker.published[0]?.routingKey, 'shop.order.eu')
  t.equal(broker.published[0]?.dedupeKey, 'o-1')
  const bad = await app.inject(post('order.placed', { order_id: 'o-1' }))
  t.equal(bad.json().code, 'EVG_VALIDATION')
  const listed = await app.inject({ method: 'GET', url: '/v1/event-types/order.placed' })
  t.match(listed.json(), { type: 'order.placed', domain: 'custom', routingKey: 'shop.order.{region}' })
})

t.test('a bad catalog file is a clear config error naming the file', async t => {
  const ajv = createAjv()
  const cases: [string, string, RegExp][] = [
    ['broken.json', '{ nope', /broken\.json is not valid JSON/],
    [
      'noexample.json',
      JSON.stringify({ ...orderPlaced, schema: { ...orderPlaced.schema, examples: [] } }),
      /noexample\.json is not an event type definition: \/schema\/examples/
    ],
    [
      'extra.json',
      JSON.stringify({ ...orderPlaced, colour: 'red' }),
      /extra\.json is not an event type definition: \/colour is not an allowed property/
    ],
    // validation would become a promise: a non-problem 500 on one route, no validation on the batch
    [
      'async.json',
      JSON.stringify({ ...orderPlaced, schema: { ...orderPlaced.schema, $async: true } }),
      /async\.json has a schema the gateway will not run: \/schema\/\$async: asynchronous schemas are not supported/
    ],
    // ^(a+)+$ on 29 characters blocks the event loop for seconds
    [
      'redos.json',
      JSON.stringify({
        ...orderPlaced,
        schema: { ...orderPlaced.schema, properties: { ...orderPlaced.schema.properties, region: { type: 'string', pattern: '^(a+)+$' } } }
      }),
      new RegExp(
        /redos\.json has a schema the gateway will not run: /.source +
        /\/schema\/properties\/region\/pattern: the pattern "\^\(a\+\)\+\$" can take exponential time/.source
      )
    ],
    [
      'redos-keys.json',
      JSON.stringify({ ...orderPlaced, schema: { ...orderPlaced.schema, patternProperties: { '(x+x+)+y': {} } } }),
      /\/schema\/patternProperties: the pattern "\(x\+x\+\)\+y" can take exponential time/
    ]
  ]
  for (const [name, text, message] of cases) {
    const dir = t.testdir({ [name]: text })
    t.throws(() => loadExternalEntries(dir, ajv), { name: 'ConfigError', message }, name)
  }
  t.throws(() => loadExternalEntries(join(t.testdir(), 'missing'), ajv), { message: /EVENT_CATALOG_DIR: cannot read/ })

  const dir = t.testdir()
  writeFileSync(join(dir, 'dup.json'), JSON.stringify({ ...orderPlaced, type: 'call.ended' }))
  t.throws(() => new Catalog(selectEntries(loadExternalEntries(dir, ajv), undefined), ajv), { message: /'call.ended' is defined twice/ })
  writeFileSync(join(dir, 'dup.json'), JSON.stringify({ ...orderPlaced, schema: { ...orderPlaced.schema, examples: [{ order_id: 1 }] } }))
  t.throws(() => new Catalog(loadExternalEntries(dir, ajv), ajv), { message: /first example must be a valid payload/ })
  writeFileSync(join(dir, 'dup.json'), JSON.stringify({ ...orderPlaced, type: 'Order Placed' }))
  t.throws(() => new Catalog(loadExternalEntries(dir, ajv), ajv), { message: /name must match/ })
  writeFileSync(
    join(dir, 'dup.json'),
    JSON.stringify({ ...orderPlaced, schema: { ...orderPlaced.schema, properties: { order_id: { type: 'strin' } } } })
  )
  t.throws(() => new Catalog(loadExternalEntries(dir, ajv), ajv), { message: /schema does not compile/ })
})

t.test('GET /v1/event-types lists the catalog with schemas and examples', async t => {
  const { app } = await build(t)
  const res = await app.inject({ method: 'GET', url: '/v1/event-types' })
  const { types } = res.json()
  t.equal(types.length, 22)
  const ended = types.find((x: { type: string }) => x.type === 'call.ended')
  t.match(ended, { path: '/v1/events/call.ended', routingKey: 'comms.call.ended', domain: 'comms', sensitive: ['transcript'] })
  t.same(ended.schema.examples[0], exampleOf('call.ended'))
  const unknown = await app.inject({ method: 'GET', url: '/v1/event-types/nope' })
  t.equal(unknown.json().code, 'EVG_UNKNOWN_TYPE')
})
