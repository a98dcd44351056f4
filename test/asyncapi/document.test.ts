import { readFileSync } from 'node:fs'
import { Parser } from '@asyncapi/parser'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { firstExample } from '../../src/catalog/index.js'
import type { DestinationConfig } from '../../src/routing/index.js'
import { generateAsyncApi } from '../../scripts/write-asyncapi.js'
import { inBrowser, skipBrowser } from '../browser.js'
import { OTHER_TENANT, post, testConfig } from '../helper.js'

// The consumers' contract, checked against what the gateway really sends: every catalog type's
// example is published through the real pipeline (validation, routing, each destination's own
// wire format) into a memory broker per destination; the document must name every address those
// messages went to, and its payload schema must accept each message's body.

const SEED_ROUTES = 'examples/routes.seed-platform.json'

interface Sent { destination: DestinationConfig, broker: MemoryBroker }

/** A gateway whose every destination records what it is given, and the document it serves. */
async function gateway (t: Test, env: Record<string, string>) {
  const sent: Sent[] = []
  const app = await buildApp(testConfig(t, env), {
    brokers: destination => {
      const broker = new MemoryBroker(destination.broker)
      sent.push({ destination, broker })
      return broker
    }
  })
  t.teardown(() => app.close())
  await app.ready()
  const res = await app.inject('/asyncapi.json')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  return { app, sent, document: res.json() as AsyncApi }
}

interface AsyncApi {
  asyncapi: string
  info: { version: string }
  servers: Record<string, unknown>
  channels: Record<string, { address: string, servers: { $ref: string }[], messages: Record<string, { $ref: string }> }>
  operations: Record<string, { action: string, channel: { $ref: string } }>
  components: { messages: Record<string, { name: string, payload: object, examples: { payload: unknown }[] }> }
}

/** The address a message went to, as its broker saw it. */
function addressOf ({ destination }: Sent, sent: MemoryBroker['published'][number]): string {
  switch (destination.broker) {
    case 'rabbitmq': return sent.message?.routingKey ?? sent.event.routingKey
    case 'sqs': return destination.queueUrl.slice(destination.queueUrl.lastIndexOf('/') + 1)
    case 'eventbridge': return sent.message?.busName ?? destination.busName
    case 'kafka': return sent.message?.topic ?? destination.topic
    case 'local': return '/v1/events'
  }
}

for (const [name, env] of [['the default configuration', {}], ['the seed-platform example', { ROUTES_FILE: SEED_ROUTES }]] as const) {
  t.test(`${name}: a valid AsyncAPI 3 document whose channels and schemas are what the gateway sends`, async t => {
    const { app, sent, document } = await gateway(t, env)
    const { diagnostics } = await new Parser().parse(JSON.stringify(document))
    const errors = diagnostics.filter(d => d.severity === 0)
    t.same(errors.map(d => `${d.message} at ${d.path.join('.')}`), [], '@asyncapi/parser reports no error')
    t.equal(document.asyncapi, '3.0.0')
    t.equal(document.info.version, JSON.parse(readFileSync('package.json', 'utf8')).version, 'the gateway\'s version')

    // Every type's catalog example, published for real, from another tenant than the document's
    // example, and again with its text fields changed where the schema allows: an address that
    // depends on the tenant or the data must be a parameter of its channel, not the example's value.
    for (const entry of app.catalog.list()) {
      const example = firstExample(entry) ?? {}
      const res = await app.inject(post(entry.type, example, { 'x-user-id': 'user-1', 'x-tenant-id': OTHER_TENANT }))
      t.equal(res.statusCode, 202, entry.type)
      const changed = Object.fromEntries(Object.entries(example).map(([k, v]) => [k, typeof v === 'string' ? `${v}x` : v]))
      await app.inject(post(entry.type, changed, { 'x-tenant-id': OTHER_TENANT }))
    }
    const ajv = new Ajv({ strict: false, allErrors: true })
    addFormats.default(ajv)
    ajv.addSchema(document, 'asyncapi')
    const channels = Object.values(document.channels).map(c => ({
      server: c.servers[0]?.$ref.split('/').pop(),
      address: c.address,
      pattern: new RegExp(`^${c.address.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '.+')}$`),
      reached: false
    }))
    let checked = 0
    for (const s of sent) {
      for (const message of s.broker.published) {
        const address = addressOf(s, message)
        const matching = channels.filter(c => c.server === s.destination.name && c.pattern.test(address))
        t.equal(matching.length, 1, `${s.destination.name} ${address}: one channel of the document`)
        for (const c of matching) c.reached = true
        const id = `${s.destination.name}.${message.event.type}`
        const validate = ajv.getSchema(`asyncapi#/components/messages/${id}/payload`)
        if (validate === undefined) {
          t.fail(`${id} is not a message of the document`)
          continue
        }
        const ok = validate(JSON.parse(message.body))
        t.ok(ok, `${id}: the schema accepts the envelope sent`, { errors: validate.errors })
        checked++
      }
    }
    t.same(channels.filter(c => !c.reached).map(c => `${c.server} ${c.address}`), [], 'every channel is where some message went')
    t.ok(checked >= app.catalog.size, `${checked} envelopes checked`)
    t.equal(Object.keys(document.operations).length, Object.keys(document.channels).length, 'a send operation per channel')
    t.ok(Object.values(document.operations).every(o => o.action === 'send'))
    for (const [id, m] of Object.entries(document.components.messages)) {
      const validate = ajv.getSchema(`asyncapi#/components/messages/${id}/payload`)
      t.ok(validate?.(m.examples[0]?.payload), `${id}: its example matches its schema`)
    }
  })
}

t.test('the committed seed-platform document is what the code generates (npm run asyncapi)', async t => {
  const committed = readFileSync('docs/asyncapi.seed-platform.json', 'utf8')
  // The environment of the command the docs give, whatever this one holds.
  t.equal(generateAsyncApi({ ROUTES_FILE: SEED_ROUTES }), committed,
    'regenerate it: env -i PATH="$PATH" ROUTES_FILE=examples/routes.seed-platform.json ' +
    'npm run asyncapi -- docs/asyncapi.seed-platform.json')
})

t.test('the document never carries a broker URL\'s credentials', async t => {
  const { document } = await gateway(t, { BROKER: 'rabbitmq', AMQP_URL: 'amqp://evg:s3cret-pass@127.0.0.1:5672' })
  const text = JSON.stringify(document)
  t.notMatch(text, /s3cret-pass/)
  t.match(document.servers, { rabbitmq: { host: '127.0.0.1:5672', protocol: 'amqp' } })
})

t.test('/docs/asyncapi renders the document in a browser, offline, and lists every channel', { skip: skipBrowser }, async t => {
  const { app, document } = await gateway(t, { ROUTES_FILE: SEED_ROUTES })
  const { base, page } = await inBrowser(t, app)
  const elsewhere: string[] = []
  page.on('request', r => { if (!r.url().startsWith(base)) elsewhere.push(r.url()) })
  const problems: string[] = []
  page.on('pageerror', e => problems.push(e.message))
  await page.goto(`${base}/docs/asyncapi`)
  await page.getByText('event-gateway: the events it sends').first().waitFor({ state: 'attached', timeout: 30_000 })
  if (process.env.EVG_SCREENSHOT) await page.screenshot({ path: process.env.EVG_SCREENSHOT, fullPage: false })
  const text = await page.locator('body').textContent() ?? ''
  for (const channel of Object.values(document.channels)) t.ok(text.includes(channel.address), `lists ${channel.address}`)
  t.same(elsewhere, [], 'nothing fetched from anywhere but the gateway')
  t.same(problems, [], 'no script error')
  const home = await (await fetch(`${base}/`, { headers: { accept: 'text/html' } })).text()
  t.match(home, /href="\/docs\/asyncapi"/, 'linked from the home page')
  const openapi = await (await fetch(`${base}/openapi.json`)).json() as { info: { description: string } }
  t.match(openapi.info.description, /\(\/docs\/asyncapi\)/, 'and from Swagger UI\'s description')
})
