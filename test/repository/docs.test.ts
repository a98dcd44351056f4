import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { TSchema } from 'typebox'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { ExternalEntrySchema } from '../../src/catalog/external.js'
import { loadConfig } from '../../src/config/index.js'
import { PROFILES, PROFILE_NAMES } from '../../src/envelopes/index.js'
import { createEvent } from '../../src/envelopes/event.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { resolveRouting } from '../../src/routing/index.js'
import { BROKER_KINDS, DESTINATION_SCHEMAS, RouteSchema, RoutesFileSchema, readRoutesFile } from '../../src/routing/routes-file.js'
import { createAjv } from '../../src/validation/index.js'
import { anchor, codes, fencedBlocks, headings, links, readDoc, root, section, tableRows } from '../markdown.js'
import { envelopeOf } from '../helper.js'

// The reference in docs/ is part of the contract: these tests fail when it and the code drift.

const rootDir = fileURLToPath(root)
const docFiles = ['README.md', ...readdirSync(join(rootDir, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`)]
const sorted = (values: Iterable<string>) => [...values].sort()

interface ObjectSchema { properties: Record<string, TSchema>, required?: string[] }

/** Rows of a `| field | required | ...` table: the field and whether it is required. */
function fieldRows (doc: string, heading: string): { field: string, required: boolean }[] {
  const text = section(doc, heading)
  if (text === undefined) throw new Error(`no heading '${heading}'`)
  return tableRows(text).map(([field = '', required = '']) => ({ field: codes(field)[0] ?? field, required: required === 'yes' }))
}

t.test('docs/metrics.md: every gateway_* metric with its type and exact labels, and no other', async t => {
  const { registry } = createMetrics()
  const metrics = (await registry.getMetricsAsJSON()).filter(m => m.name.startsWith('gateway_'))
  const doc = readDoc('docs/metrics.md')
  const rows = new Map(tableRows(doc).filter(r => /^`gateway_/.test(r[0] ?? '')).map(r => [codes(r[0] as string)[0] as string, r]))
  t.same(sorted(rows.keys()), sorted(metrics.map(m => m.name)), 'the table lists the registry\'s metrics')
  for (const metric of metrics) {
    const row = rows.get(metric.name)
    if (row === undefined) continue
    // prom-client keeps the label names on the metric object; its typings do not declare them.
    const labels = (registry.getSingleMetric(metric.name) as unknown as { labelNames: readonly string[] }).labelNames
    t.equal(row[1], String(metric.type), `${metric.name} is a ${String(metric.type)}`)
    t.same(sorted(codes(row[2] as string)), sorted(labels), `${metric.name} labels`)
  }
  // Nowhere in the docs a metric name that does not exist (histogram series included).
  const names = new Set(metrics.flatMap(
    m => String(m.type) === 'histogram' ? [m.name, `${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name]
  ))
  for (const file of docFiles) {
    for (const name of new Set(readDoc(file).match(/gateway_[a-z_]+/g))) t.ok(names.has(name), `${file}: ${name} exists`)
  }
})

t.test('docs/routes-file.md: every field of every destination kind, required as the schema says, and no other', async t => {
  const doc = readDoc('docs/routes-file.md')
  const common = fieldRows(doc, '### Every destination')
  for (const broker of BROKER_KINDS) {
    const schema = DESTINATION_SCHEMAS[broker] as unknown as ObjectSchema
    const rows = [...common, ...fieldRows(doc, `### \`${broker}\``)]
    t.same(sorted(rows.map(r => r.field)), sorted(Object.keys(schema.properties)), `${broker}: fields`)
    for (const row of rows) {
      t.equal(row.required, schema.required?.includes(row.field) ?? false, `${broker}.${row.field} required: ${String(row.required)}`)
    }
  }
  for (const [heading, schema] of [['## Top level', RoutesFileSchema], ['## Routes', RouteSchema]] as const) {
    const rows = fieldRows(doc, heading)
    const object = schema as unknown as ObjectSchema
    t.same(sorted(rows.map(r => r.field)), sorted(Object.keys(object.properties)), `${heading}: fields`)
    for (const row of rows) t.equal(row.required, object.required?.includes(row.field) ?? false, `${row.field} required`)
  }
  const commonRows = tableRows(section(doc, '### Every destination') ?? '')
  const meaningOf = (field: string) => codes(commonRows.find(r => codes(r[0] ?? '')[0] === field)?.[3] ?? '')
  t.same(sorted(meaningOf('broker')), sorted(BROKER_KINDS), 'the broker row lists every kind')
  t.same(sorted(meaningOf('envelope')), sorted(PROFILE_NAMES), 'the envelope row lists every profile')
})

t.test('docs/routes-file.md: every JSON example is a routes file the gateway accepts', async t => {
  const blocks = fencedBlocks(readDoc('docs/routes-file.md'), 'json')
  t.ok(blocks.length >= 3)
  const env: Record<string, string> = {
    AMQP_USER: 'gateway',
    AMQP_PASSWORD: 'secret',
    AMQP_HOST: 'rabbit',
    AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
    AMQP_EXCHANGE: 'events'
  }
  const dir = t.testdir()
  const types = BUILTIN_ENTRIES
  blocks.forEach((block, i) => {
    for (const [, name] of block.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
      t.ok(name !== undefined && name in env, `example ${i}: \${${name}} has a value in this test`)
    }
    const path = join(dir, `example-${i}.json`)
    writeFileSync(path, block)
    t.doesNotThrow(() => resolveRouting(readRoutesFile(path, createAjv(), env), types, loadConfig({}), path), `example ${i}`)
  })
})

t.test('examples/routes.seed-platform.json: valid, and all 22 built-in types reach a destination', async t => {
  const path = join(rootDir, 'examples/routes.seed-platform.json')
  const SURVEYS_QUEUE_URL = 'https://sqs.eu-central-1.amazonaws.com/123456789012/survey-events.fifo'
  const file = readRoutesFile(path, createAjv(), { SURVEYS_QUEUE_URL })
  const routing = resolveRouting(file, BUILTIN_ENTRIES, loadConfig({}), path)
  t.equal(BUILTIN_ENTRIES.length, 22)
  for (const entry of BUILTIN_ENTRIES) t.ok((routing.routes.get(entry.type) ?? []).length > 0, `${entry.type} is routed`)
  // Every destination used, every route matches something; the one warning is seed 000's
  // deduplication id, which leaves the tenant out as its publisher did.
  t.same(routing.warnings, [
    'destinations.surveys: a message.deduplicationId without {{tenant}}: within SQS\'s 5-minute window, ' +
      'one tenant\'s event is dropped as a duplicate of another tenant\'s with the same values'
  ])
  // The references fall back to their defaults.
  t.match(
    routing.destinations.find(d => d.name === 'ocelot'),
    { broker: 'rabbitmq', url: 'amqp://guest:guest@127.0.0.1:5672', exchange: 'ocelot.events' }
  )
  // docs/routes-file.md explains why: the seed consumers declare these exchanges plain.
  for (const name of ['ocelot', 'draft-genie']) {
    t.notOk(
      routing.destinations.find(d => d.name === name && d.broker === 'rabbitmq' && d.alternateExchange !== undefined),
      `${name}: no alternate exchange`
    )
  }
  // The document's table of the example names each destination with its broker and envelope.
  const rows = tableRows(section(readDoc('docs/routes-file.md'), '## The seed platform example') ?? '')
  t.same(sorted(rows.map(r => codes(r[0] as string)[0] as string)), sorted(Object.keys(file.destinations)))
  for (const [name, spec] of Object.entries(file.destinations)) {
    const row = rows.find(r => codes(r[0] as string)[0] === name)
    t.equal(row?.[1], spec.broker, `${name}: broker`)
    t.equal(codes(row?.[3] ?? '')[0], typeof spec.envelope === 'object' ? 'template' : spec.envelope ?? 'cloudevents', `${name}: envelope`)
  }
})

/** Field names of an envelope, nested objects as `a.b`; the event data is one field. */
function fieldNames (value: Record<string, unknown>, prefix = ''): string[] {
  const nested = (key: string, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && key !== 'data' && key !== 'payload'
  return Object.entries(value).flatMap(([key, v]) => nested(key, v)
    ? fieldNames(v as Record<string, unknown>, `${prefix}${key}.`)
    : [`${prefix}${key}`])
}

t.test('docs/envelopes.md: every profile, with exactly the fields it writes', async t => {
  const doc = readDoc('docs/envelopes.md')
  const entry = BUILTIN_ENTRIES.find(e => e.type === 'speaker.onboarded')
  if (entry === undefined) throw new Error('no speaker.onboarded')
  // Every optional piece of context present, so that every field the profile can write appears.
  const event = createEvent(entry, { speaker_id: 'spk-1', external_id: 'ext-1', name: 'A', bucket: 'GOOD' }, {
    tenantId: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
    userId: 'user-9',
    accountId: 'acct-1',
    correlationId: 'corr-1',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    tracestate: 'congo=t61rcWkgMzE'
  })
  const profileSections = headings(doc).filter(h => /^## `[^`]+`$/.test(h)).map(h => codes(h)[0])
  t.same(sorted(profileSections as string[]), sorted(PROFILE_NAMES), 'a section per profile, and none for a profile that does not exist')
  const overview = tableRows(doc.slice(0, doc.indexOf('\n## ')))
  for (const name of PROFILE_NAMES) {
    const text = section(doc, `## \`${name}\``) ?? ''
    const written = sorted(fieldNames(JSON.parse(envelopeOf(name, event, { source: 'svc', module: 'mod' }))))
    t.same(sorted(tableRows(text).map(r => codes(r[0] as string)[0] as string)), written, `${name}: the field table`)
    const example = fencedBlocks(text, 'json')[0]
    t.ok(example, `${name}: has a JSON example`)
    t.same(sorted(fieldNames(JSON.parse(example ?? '{}'))), written, `${name}: the example's fields`)
    t.same(codes(overview.find(r => codes(r[0] as string)[0] === name)?.[2] ?? ''), [PROFILES[name].contentType], `${name}: content type`)
  }
})

t.test('docs/event-types.md: the built-in catalog as it is, and the EVENT_CATALOG_DIR fields', async t => {
  const doc = readDoc('docs/event-types.md')
  const rows = tableRows(section(doc, '## Built in') ?? '')
  t.same(rows.map(r => codes(r[0] as string)[0]), BUILTIN_ENTRIES.map(e => e.type), 'every type, in catalog order')
  for (const e of BUILTIN_ENTRIES) {
    const row = rows.find(r => codes(r[0] as string)[0] === e.type) ?? []
    const [, domain, routingKey = '', dedupeKey = '', sensitive = '', aggregate = ''] = row
    t.same([domain, codes(routingKey), codes(dedupeKey), codes(sensitive), codes(aggregate)],
      [
        e.domain,
        [e.routingKey],
        e.dedupeKey === undefined ? [] : [e.dedupeKey],
        e.sensitive ?? [],
        e.aggregate === undefined ? [] : [e.aggregate.type, e.aggregate.idField]
      ], e.type)
  }
  const fields = fieldRows(doc, '## Adding types without a rebuild')
  const schema = ExternalEntrySchema as unknown as ObjectSchema
  t.same(sorted(fields.map(f => f.field)), sorted(Object.keys(schema.properties)))
  for (const f of fields) t.equal(f.required, schema.required?.includes(f.field) ?? false, `${f.field} required`)
})

t.test('docs/api.md names every route of the OpenAPI document', async t => {
  const doc = readDoc('docs/api.md')
  const openapi = JSON.parse(readFileSync(
    join(rootDir, 'openapi/openapi.json'),
    'utf8'
  )) as { paths: Record<string, Record<string, unknown>> }
  const types = new Set(BUILTIN_ENTRIES.map(e => e.type))
  for (const [path, operations] of Object.entries(openapi.paths)) {
    const documented = path.startsWith('/v1/events/') && types.has(path.slice('/v1/events/'.length)) ? '/v1/events/{type}' : path
    for (const method of Object.keys(operations)) {
      t.match(doc, `\`${method.toUpperCase()} ${documented}\``, `${method.toUpperCase()} ${path}`)
    }
  }
})

t.test('every relative link in README.md and docs/ points to a file (and heading) that exists', async t => {
  for (const file of docFiles) {
    const text = readDoc(file)
    for (const link of links(text)) {
      if (/^[a-z]+:/i.test(link)) continue
      const [target = '', fragment] = link.split('#')
      const path = target === '' ? join(rootDir, file) : normalize(join(rootDir, dirname(file), target))
      t.ok(path.startsWith(rootDir) && existsSync(path), `${file}: ${link} exists in the repository`)
      if (fragment === undefined || !existsSync(path) || !statSync(path).isFile() || !path.endsWith('.md')) continue
      t.ok(headings(readFileSync(path, 'utf8')).map(anchor).includes(fragment), `${file}: ${link} names a heading`)
    }
  }
})

t.test('nothing in the repository refers to files outside it', async t => {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: rootDir, encoding: 'utf8' }).split('\0').filter(f => f !== '')
  t.ok(files.length > 50, 'git ls-files lists the repository')
  for (const file of files) {
    const path = join(rootDir, file)
    if (!existsSync(path)) continue
    const text = readFileSync(path, 'utf8')
    // Spelled in pieces so that this file does not mention them itself.
    for (const outside of [['..', 'shared'].join('/'), ['shared', 'DESIGN.md'].join('/')]) {
      t.notOk(text.includes(outside), `${file} does not mention ${outside}`)
    }
  }
})

t.test('docs/architecture.md names every folder of src/, and only real ones', async t => {
  const doc = readDoc('docs/architecture.md')
  const folders = readdirSync(join(rootDir, 'src'), { withFileTypes: true }).filter(d => d.isDirectory()).map(d => `src/${d.name}/`)
  const named = tableRows(doc.slice(0, doc.indexOf('\n## '))).map(r => codes(r[0] as string)[0])
  t.same(sorted(named as string[]), sorted(folders), 'a row per folder')
  for (const path of new Set([...doc.matchAll(/`((?:[a-z-]+\/)+[a-z-]+\.ts)`/g)].map(m => m[1] as string))) {
    const full = path.startsWith('src/') ? path : `src/${path}`
    t.ok(
      existsSync(join(rootDir, full)) || existsSync(join(rootDir, 'src', path)) || folders.some(f => existsSync(join(rootDir, f, path))),
      `${path} exists`
    )
  }
})
