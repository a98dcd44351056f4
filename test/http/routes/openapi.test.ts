import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { TSchema } from 'typebox'
import { buildApp } from '../../../src/app.js'
import { BUILTIN_ENTRIES } from '../../../src/catalog/index.js'
import { PROFILE_NAMES, type ProfileName } from '../../../src/envelopes/index.js'
import { createEvent } from '../../../src/envelopes/event.js'
import { componentBases } from '../../../src/http/routes/openapi.js'
import { CloudEventSchema, DraftGenieEventSchema, OcelotEventSchema } from '../../../src/http/routes/schemas.js'
import { createAjv } from '../../../src/validation/index.js'
import { OPENAPI_PATH, generateOpenApi } from '../../../scripts/write-openapi.js'
import { TENANT, build, envelopeOf, exampleOf, post, testConfig } from '../../helper.js'

// The OpenAPI document is a contract: these tests hold it to what the gateway does.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document, walked by the tests
type Json = Record<string, any>
const committed = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as Json

/** What a `$ref` into the document's components points to (anything else as it is). */
function resolve (doc: Json, node: Json): Json {
  if (typeof node.$ref !== 'string') return node
  return node.$ref.slice(2).split('/').reduce((at: Json, key: string) => at[key], doc)
}

/** Ajv with the document loaded: `check('Problem', value)` validates against a component. */
function validator (doc: Json) {
  const ajv = createAjv()
  ajv.addSchema(doc, 'openapi')
  return (component: string, value: unknown): boolean => ajv.validate({ $ref: `openapi#/components/schemas/${component}` }, value)
}

// A busy machine's start-up (compiling every route's schemas) must not read as load: without it,
// the first request could be shed (503 EVG_OVERLOADED) and these tests would be about timing.
const calm = { pressure: { maxEventLoopDelay: 0 } }

const eventOperations = (doc: Json): [string, Json][] => Object.entries(doc.paths as Json)
  .filter(([path]) => path.startsWith('/v1/events'))
  .flatMap(([path, item]) => Object.values(item as Json).map(op => [path, op as Json] as [string, Json]))

t.test('openapi/openapi.json is what the app serves (run `npm run openapi` after API changes)', async t => {
  t.equal(readFileSync(OPENAPI_PATH, 'utf8'), await generateOpenApi(), 'no drift')
})

t.test('every type: its payload a named component, with its example; context headers, security and answers', async t => {
  const doc = committed
  const bases = componentBases(BUILTIN_ENTRIES.map(e => e.type))
  for (const entry of BUILTIN_ENTRIES) {
    const op = doc.paths[`/v1/events/${entry.type}`]?.post
    t.ok(op, `${entry.type} has a path`)
    const media = op.requestBody.content['application/json']
    t.equal(media.schema.$ref, `#/components/schemas/${bases.get(entry.type)}Data`, `${entry.type}: the payload is a component`)
    t.equal(resolve(doc, media.schema).additionalProperties, false)
    t.same(media.example, exampleOf(entry.type), `${entry.type} example`)
    t.same(Object.keys(op.responses).sort(), ['202', '409', '429', '4XX', '503', '5XX'])
    t.same(
      Object.keys(op.responses['429'].headers).sort(),
      ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'Retry-After', 'X-Correlation-ID'],
      'a 429 says when to retry'
    )
    const accepted = op.responses['202']
    t.same(Object.keys(accepted.content), ['application/json'])
    t.equal(accepted.content['application/json'].schema.$ref, '#/components/schemas/Accepted')
    t.same(
      Object.keys(accepted.headers).sort(),
      ['Idempotency-Replayed', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'X-Correlation-ID']
    )
  }
  t.equal(bases.get('batch.processing.completed'), 'BatchProcessingCompleted')
  t.same(
    resolve(doc, { $ref: '#/components/schemas/Accepted' }).properties.status.enum,
    ['published', 'queued'],
    'published, or queued in a spooled destination\'s outbox'
  )
  t.same(resolve(doc, { $ref: '#/components/schemas/BatchAccepted' }).properties.status.enum, ['published', 'queued'], 'a batch result too')
})

t.test('every event route: tenant required, the API key scheme, problems as application/problem+json with their headers', async t => {
  const doc = committed
  const ops = eventOperations(doc)
  t.equal(ops.length, BUILTIN_ENTRIES.length + 2, 'every type, the batch and read-back')
  for (const [path, op] of ops) {
    const params = (op.parameters as Json[]).map(p => resolve(doc, p))
    t.match(
      params.find(p => p.name === 'x-tenant-id'),
      { in: 'header', required: true, example: TENANT },
      `${op.operationId}: X-Tenant-ID required`
    )
    t.same(op.security, [{ apiKey: [] }, {}], `${op.operationId}: an API key, optional without API_KEYS_FILE`)
    for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
      t.ok(response.headers['X-Correlation-ID'], `${path} ${status}: X-Correlation-ID`)
      if (!/^[45]/.test(status)) continue
      t.same(Object.keys(response.content), ['application/problem+json'], `${path} ${status}: a problem`)
      t.equal(response.content['application/problem+json'].schema.$ref, '#/components/schemas/Problem')
    }
    t.ok(op.responses['503'].headers['Retry-After'], `${op.operationId}: 503 with Retry-After`)
  }
  t.match(resolve(doc, doc.components.headers['X-Correlation-ID']), { required: true })
  for (const [path, item] of Object.entries(doc.paths as Json).filter(([path]) => !path.startsWith('/v1/events'))) {
    for (const op of Object.values(item as Json)) {
      // The admin API takes a key (one with "admin": true) as the event routes do; the rest none.
      if (path.startsWith('/v1/admin/')) t.same(op.security, [{ apiKey: [] }, {}], `${path}: an API key, optional without API_KEYS_FILE`)
      else t.same(op.security, [], `${path}: no key needed`)
      t.ok(op.responses['4XX'] && op.responses['5XX'], `${path}: its problems`)
    }
  }
  t.same(committed.servers, [{ url: '/', description: 'This gateway' }])
})

t.test('the batch item is a union on `type`, each variant with its type\'s payload; the route still judges each item alone', async t => {
  const doc = committed
  const schemas = doc.components.schemas
  const bases = componentBases(BUILTIN_ENTRIES.map(e => e.type))
  t.equal(schemas.BatchRequest.properties.events.items.$ref, '#/components/schemas/BatchItem')
  t.equal(schemas.BatchRequest.properties.events.maxItems, 100, 'BATCH_MAX_EVENTS')
  const item = schemas.BatchItem
  t.equal(item.discriminator.propertyName, 'type')
  t.same(Object.keys(item.discriminator.mapping), BUILTIN_ENTRIES.map(e => e.type))
  t.equal(item.oneOf.length, BUILTIN_ENTRIES.length)
  for (const entry of BUILTIN_ENTRIES) {
    const variant = resolve(doc, { $ref: item.discriminator.mapping[entry.type] })
    t.same(variant.properties.type.enum, [entry.type])
    t.equal(variant.properties.data.$ref, `#/components/schemas/${bases.get(entry.type)}Data`)
  }

  const check = validator(doc)
  const example = doc.paths['/v1/events'].post.requestBody.content['application/json'].example
  t.ok(check('BatchRequest', example), 'the example is a valid batch')
  const call = { type: 'call.ended', data: exampleOf('call.ended') }
  t.ok(check('BatchRequest', { events: [call] }))
  t.notOk(check('BatchRequest', { events: [{ ...call, data: { ...call.data, duration: '180' } }] }), 'a wrong field type')
  t.notOk(check('BatchRequest', { events: [{ type: 'call.ended', data: exampleOf('survey.completed') }] }), 'another type\'s data')

  // The route's own schema stays loose about data: one bad item is refused alone (207).
  const { app } = await build(t, {}, calm)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: { events: [call, { ...call, data: { ...call.data, duration: '180' } }] }
  })
  t.equal(res.statusCode, 207)
  t.ok(check('BatchResults', res.json()), 'the answer is what the document says')
  t.match(res.json().results[1].error, { code: 'EVG_VALIDATION', errors: [{ path: '/events/1/data/duration' }] })
})

t.test('answers are what the document says: bodies, media types and headers', async t => {
  const check = validator(committed)
  const app = await buildApp(testConfig(t), calm) // the local destination, so reading back works
  t.teardown(() => app.close())
  await app.ready()
  const accepted = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'k-1' }))
  t.equal(accepted.statusCode, 202)
  t.match(accepted.headers['content-type'], /^application\/json/)
  t.ok(check('Accepted', accepted.json()))
  t.ok(accepted.headers['x-correlation-id'])
  const replay = await app.inject(post('call.ended', exampleOf('call.ended'), { 'idempotency-key': 'k-1' }))
  t.equal(replay.headers['idempotency-replayed'], 'true')

  const refused = await app.inject(post('call.ended', { ...exampleOf('call.ended'), duration: '180' }))
  t.equal(refused.statusCode, 400)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  t.ok(check('Problem', refused.json()))
  t.ok(refused.headers['x-correlation-id'])

  const page = await app.inject({ url: '/v1/events', headers: { 'x-tenant-id': TENANT } })
  t.equal(page.json().events.length, 1)
  t.ok(check('EventsPage', page.json()))
  const types = await app.inject('/v1/event-types/call.ended')
  t.ok(check('EventType', types.json()))
  t.ok(check('Readiness', (await app.inject('/health/ready')).json()))
  const unknown = await app.inject('/v1/event-types/nope')
  t.match(unknown.headers['content-type'], /^application\/problem\+json/)
})

t.test('the envelope components describe what each profile writes, and only it', async t => {
  const schemas: Record<ProfileName, TSchema> = {
    cloudevents: CloudEventSchema,
    ocelot: OcelotEventSchema,
    'draft-genie': DraftGenieEventSchema
  }
  const ajv = createAjv()
  const entry = BUILTIN_ENTRIES.find(e => e.type === 'speaker.onboarded')
  if (entry === undefined) throw new Error('no speaker.onboarded')
  const full = {
    tenantId: TENANT,
    userId: 'user-9',
    accountId: 'acct-1',
    correlationId: 'corr-1',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  }
  for (const context of [full, { tenantId: TENANT, correlationId: 'corr-2' }]) {
    const event = createEvent(entry, exampleOf('speaker.onboarded'), context)
    for (const name of PROFILE_NAMES) {
      const envelope = JSON.parse(envelopeOf(name, event, { source: 'svc', module: 'mod' }))
      for (const other of PROFILE_NAMES) {
        t.equal(ajv.validate(schemas[other], envelope), other === name, `${name} envelope ${other === name ? 'is' : 'is not'} ${other}`)
      }
    }
  }
})

t.test('X-Tenant-ID: required in the document, still refused by the context hook (400 EVG_BAD_CONTEXT)', async t => {
  const { app } = await build(t)
  const call = exampleOf('call.ended')
  for (const request of [
    { method: 'POST' as const, url: '/v1/events/call.ended', headers: { 'content-type': 'application/json' }, payload: call },
    {
      method: 'POST' as const,
      url: '/v1/events',
      headers: { 'content-type': 'application/json' },
      payload: { events: [{ type: 'call.ended', data: call }] }
    },
    // whatever the body: the hook answers before it is validated
    { method: 'POST' as const, url: '/v1/events/call.ended', headers: { 'content-type': 'application/json' }, payload: '{"not":"valid"}' },
    { method: 'GET' as const, url: '/v1/events' }
  ]) {
    const res = await app.inject(request)
    t.equal(res.statusCode, 400, `${request.method} ${request.url}`)
    t.match(res.json(), { code: 'EVG_BAD_CONTEXT', detail: 'x-tenant-id header is required' })
    t.match(res.headers['content-type'], /^application\/problem\+json/)
  }

  // With the development fallback the header may be left out, and the document says so.
  const mock = await build(t, { ALLOW_MOCK_CONTEXT: 'true', MOCK_TENANT_ID: TENANT }, calm)
  const doc = (await mock.app.inject('/openapi.json')).json()
  t.equal(doc.components.parameters.XTenantId.required, false)
  t.equal(
    (await mock.app.inject({
      method: 'POST',
      url: '/v1/events/call.ended',
      headers: { 'content-type': 'application/json' },
      payload: call
    })).statusCode,
    202
  )
})

t.test('with API_KEYS_FILE the event routes require the key in the document too', async t => {
  const sha256 = createHash('sha256').update('a-key').digest('hex')
  const dir = t.testdir({ 'keys.json': JSON.stringify({ keys: [{ name: 'all', sha256, tenants: ['*'], eventTypes: ['*'] }] }) })
  const { app } = await build(t, { API_KEYS_FILE: join(dir, 'keys.json') })
  const doc = (await app.inject('/openapi.json')).json()
  for (const [, op] of eventOperations(doc)) t.same(op.security, [{ apiKey: [] }], op.operationId)
  for (const [path, item] of Object.entries(doc.paths as Json).filter(([path]) => path.startsWith('/v1/admin/'))) {
    for (const op of Object.values(item as Json)) t.same(op.security, [{ apiKey: [] }], path)
  }
  t.same(doc.paths['/v1/event-types'].get.security, [])
})

t.test('tags: each declared once with a description; the batch endpoint apart from the batch domain', async t => {
  const names = (committed.tags as { name: string, description?: string }[]).map(tag => tag.name)
  t.same(names, [...new Set(names)], 'no tag twice')
  t.ok((committed.tags as Json[]).every(tag => typeof tag.description === 'string' && tag.description !== ''))
  t.same(committed.paths['/v1/events'].post.tags, ['batch-publish'])
  t.same(committed.paths['/v1/events/batch.processing.completed'].post.tags, ['batch'])
  const used = new Set(
    Object.values(committed.paths as Json).flatMap(item => Object.values(item as Json).flatMap(op => op.tags as string[]))
  )
  t.same([...used].sort(), [...names].sort(), 'every declared tag is used')
})

t.test('component names: PascalCase of the type; the type itself where two would share one', async t => {
  const bases = componentBases(['call.ended', 'call_ended', 'survey.not_reached', 'a.1b', 'a1b'])
  t.same([...bases.values()], ['call.ended', 'call_ended', 'SurveyNotReached', 'a.1b', 'a1b'])
})

t.test('Swagger UI is served at /docs', async t => {
  const { app } = await build(t)
  const res = await app.inject('/docs/')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/html/)
  t.match(res.body, /swagger-ui/i)
  const json = await app.inject('/docs/json')
  t.equal(json.json().info.title, 'event-gateway')
})
