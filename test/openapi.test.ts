import { readFileSync } from 'node:fs'
import t from 'tap'
import { BUILTIN_ENTRIES } from '../src/catalog/index.js'
import { OPENAPI_PATH, generateOpenApi } from '../scripts/write-openapi.js'
import { build, exampleOf } from './helper.js'

t.test('openapi/openapi.json is what the app serves (run `npm run openapi` after API changes)', async t => {
  const committed = readFileSync(OPENAPI_PATH, 'utf8')
  t.equal(committed, await generateOpenApi(), 'no drift')
})

t.test('the document has every type with its schema and example, and the shared parts', async t => {
  const { app } = await build(t)
  const res = await app.inject('/openapi.json')
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.1.0')
  for (const entry of BUILTIN_ENTRIES) {
    const op = doc.paths[`/v1/events/${entry.type}`]?.post
    t.ok(op, `${entry.type} has a path`)
    const media = op.requestBody.content['application/json']
    t.same(media.example, exampleOf(entry.type), `${entry.type} example`)
    t.equal(media.schema.additionalProperties, false)
    t.ok(op.parameters.some((p: { name: string, example?: string }) => p.name === 'x-tenant-id' && p.example), 'tenant header with an example')
    t.ok(op.responses['202'] && op.responses['4XX'] && op.responses['5XX'])
  }
  t.ok(doc.paths['/v1/events'].post && doc.paths['/v1/events'].get)
  t.ok(doc.paths['/v1/event-types/{type}'].get)
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
