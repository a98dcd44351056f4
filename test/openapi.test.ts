import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { BUILTIN_ENTRIES } from '../src/catalog/index.js'
import { OPENAPI_PATH, generateOpenApi } from '../scripts/write-openapi.js'
import { TENANT, build, exampleOf } from './helper.js'

// The OpenAPI document is a contract: these tests hold it to what the gateway does.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document, walked by the tests
type Json = Record<string, any>
const committed = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as Json

// A busy machine's start-up (compiling every route's schemas) must not read as load: without it,
// the first request could be shed (503 EVG_OVERLOADED) and these tests would be about timing.
const calm = { pressure: { maxEventLoopDelay: 0 } }

const eventOperations = (doc: Json): [string, Json][] => Object.entries(doc.paths as Json)
  .filter(([path]) => path.startsWith('/v1/events'))
  .flatMap(([path, item]) => Object.values(item as Json).map(op => [path, op as Json] as [string, Json]))

t.test('openapi/openapi.json is what the app serves (run `npm run openapi` after API changes)', async t => {
  t.equal(readFileSync(OPENAPI_PATH, 'utf8'), await generateOpenApi(), 'no drift')
})

t.test('every type has a path with its schema and example, and its answers', async t => {
  const doc = committed
  for (const entry of BUILTIN_ENTRIES) {
    const op = doc.paths[`/v1/events/${entry.type}`]?.post
    t.ok(op, `${entry.type} has a path`)
    const media = op.requestBody.content['application/json']
    t.same(media.example, exampleOf(entry.type), `${entry.type} example`)
    t.equal(media.schema.additionalProperties, false)
    t.same(Object.keys(op.responses).sort(), ['202', '4XX', '503', '5XX'])
    t.same(Object.keys(op.responses['202'].content), ['application/json'])
    t.same(op.responses['202'].content['application/json'].schema.properties.status.enum, ['published'], 'no `queued` before a spool mode exists')
  }
  t.notMatch(JSON.stringify(doc), /queued/)
})

t.test('every event route: tenant required, the API key scheme, problems as application/problem+json', async t => {
  const doc = committed
  const ops = eventOperations(doc)
  t.equal(ops.length, BUILTIN_ENTRIES.length + 2, 'every type, the batch and read-back')
  for (const [path, op] of ops) {
    t.match((op.parameters as Json[]).find(p => p.name === 'x-tenant-id'), { in: 'header', required: true, example: TENANT }, `${op.operationId}: X-Tenant-ID required`)
    t.same(op.security, [{ apiKey: [] }, {}], `${op.operationId}: an API key, optional without API_KEYS_FILE`)
    for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
      if (/^[45]/.test(status)) t.same(Object.keys(response.content), ['application/problem+json'], `${path} ${status}: a problem`)
    }
    t.ok(op.responses['503'], `${op.operationId}: 503`)
  }
  for (const [path, item] of Object.entries(doc.paths as Json).filter(([path]) => !path.startsWith('/v1/events'))) {
    for (const op of Object.values(item as Json)) {
      t.same(op.security, [], `${path}: no key needed`)
      t.ok(op.responses['4XX'] && op.responses['5XX'], `${path}: its problems`)
    }
  }
  t.same(committed.servers, [{ url: '/', description: 'This gateway' }])
})

t.test('X-Tenant-ID: required in the document, still refused by the context hook (400 EVG_BAD_CONTEXT)', async t => {
  const { app } = await build(t)
  const call = exampleOf('call.ended')
  for (const request of [
    { method: 'POST' as const, url: '/v1/events/call.ended', headers: { 'content-type': 'application/json' }, payload: call },
    { method: 'POST' as const, url: '/v1/events', headers: { 'content-type': 'application/json' }, payload: { events: [{ type: 'call.ended', data: call }] } },
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
  t.equal(doc.paths['/v1/events/call.ended'].post.parameters.find((p: Json) => p.name === 'x-tenant-id').required, false)
  t.equal((await mock.app.inject({ method: 'POST', url: '/v1/events/call.ended', headers: { 'content-type': 'application/json' }, payload: call })).statusCode, 202)
})

t.test('with API_KEYS_FILE the event routes require the key in the document too', async t => {
  const sha256 = createHash('sha256').update('a-key').digest('hex')
  const dir = t.testdir({ 'keys.json': JSON.stringify({ keys: [{ name: 'all', sha256, tenants: ['*'], eventTypes: ['*'] }] }) })
  const { app } = await build(t, { API_KEYS_FILE: join(dir, 'keys.json') })
  const doc = (await app.inject('/openapi.json')).json()
  for (const [, op] of eventOperations(doc)) t.same(op.security, [{ apiKey: [] }], op.operationId)
  t.same(doc.paths['/v1/event-types'].get.security, [])
})

t.test('tags: each declared once with a description; the batch endpoint apart from the batch domain', async t => {
  const names = (committed.tags as { name: string, description?: string }[]).map(tag => tag.name)
  t.same(names, [...new Set(names)], 'no tag twice')
  t.ok((committed.tags as Json[]).every(tag => typeof tag.description === 'string' && tag.description !== ''))
  t.same(committed.paths['/v1/events'].post.tags, ['batch-publish'])
  t.same(committed.paths['/v1/events/batch.processing.completed'].post.tags, ['batch'])
  const used = new Set(Object.values(committed.paths as Json).flatMap(item => Object.values(item as Json).flatMap(op => op.tags as string[])))
  t.same([...used].sort(), [...names].sort(), 'every declared tag is used')
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
