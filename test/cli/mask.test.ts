import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { BUILTIN_ENTRIES, loadCatalog } from '../../src/catalog/index.js'
import { maskEnvelope, sensitiveFieldsOf } from '../../src/cli/mask.js'
import { compileWireFormat, type EnvelopeSpec } from '../../src/envelopes/index.js'
import type { GatewayEvent } from '../../src/envelopes/event.js'
import { createAjv } from '../../src/validation/index.js'
import { EVENT_TIME, TENANT, dataDir, envelopeOf } from '../helper.js'

const event = (type: string, data: Record<string, unknown>): GatewayEvent =>
  ({ id: 'id-1', type, time: EVENT_TIME, tenantId: TENANT, correlationId: 'c', data, routingKey: type })

const builtins = sensitiveFieldsOf(loadCatalog({}, createAjv()))
const placements = (envelope: EnvelopeSpec, type: string) => {
  const entry = BUILTIN_ENTRIES.find(e => e.type === type)
  return compileWireFormat(
    { envelope },
    'local',
    { type, schema: entry?.schema ?? { type: 'object' }, source: 's', module: 's' }
  ).placements
}
const call = event('call.ended', { call_id: 'c1', duration: 3, outcome: 'completed', transcript: 'TOP-SECRET' })
const sensitive = builtins.get('call.ended') ?? []

t.test('sensitive fields are masked in data (cloudevents, ocelot) and in payload (draft-genie)', async t => {
  for (const [profile, data] of [['cloudevents', 'data'], ['ocelot', 'data'], ['draft-genie', 'payload']] as const) {
    const envelope = JSON.parse(envelopeOf(profile, call, { source: 's' })) as Record<string, unknown>
    const masked = maskEnvelope(envelope, placements(profile, 'call.ended'), sensitive) as Record<string, unknown>
    t.notOk(JSON.stringify(masked).includes('TOP-SECRET'), `${profile}: the transcript is not printed`)
    t.match(masked[data], { transcript: '[redacted]', outcome: 'completed' }, `${profile}: the rest is as sent`)
    t.match(envelope[data], { transcript: 'TOP-SECRET' }, `${profile}: the envelope itself is not changed`)
  }
})

t.test('in a template: merged into the envelope, on its own, or inside a text', async t => {
  const template = {
    flat: { id: '{{id}}', '...': '{{data}}' },
    alone: { said: '{{data.transcript}}', outcome: '{{data.outcome}}' },
    text: { summary: 'call {{data.call_id}}: {{data.transcript ?? \'\'}}', outcome: '{{data.outcome}}' }
  }
  for (const [name, envelope] of Object.entries(template)) {
    const written = JSON.parse(envelopeOf(envelope, call)) as unknown
    t.match(JSON.stringify(written), 'TOP-SECRET', `${name}: the template writes the transcript`)
    const masked = maskEnvelope(written, placements(envelope, 'call.ended'), sensitive)
    t.notMatch(JSON.stringify(masked), 'TOP-SECRET', `${name}: tail does not print it`)
    t.match(
      masked,
      name === 'flat' ? { outcome: 'completed', transcript: '[redacted]' } : { outcome: 'completed' },
      `${name}: the rest is as sent`
    )
  }
})

t.test('a null sensitive field stays null, and types without sensitive fields are printed as they came', async t => {
  const nullTranscript = { type: 'call.ended', data: { transcript: null } }
  t.same(maskEnvelope(nullTranscript, placements('ocelot', 'call.ended'), sensitive), nullTranscript)
  const campaign = { type: 'campaign.completed', data: { campaign_id: 'x' } }
  t.equal(maskEnvelope(campaign, placements('ocelot', 'campaign.completed'), builtins.get('campaign.completed') ?? []), campaign)
})

t.test('types from EVENT_CATALOG_DIR are masked too', async t => {
  const dir = dataDir(t)
  writeFileSync(join(dir, 'note.json'), JSON.stringify({
    type: 'note.taken',
    description: 'A note',
    sensitive: ['text'],
    schema: { type: 'object', properties: { text: { type: 'string' } }, examples: [{ text: 'x' }] }
  }))
  const catalog = loadCatalog({ EVENT_CATALOG_DIR: dir }, createAjv())
  const entry = catalog.get('note.taken')
  if (entry === undefined) throw new Error('no note.taken')
  const format = compileWireFormat(
    { envelope: 'draft-genie' },
    'local',
    { type: 'note.taken', schema: entry.schema, source: 's', module: 's' }
  )
  const masked = maskEnvelope(
    { eventType: 'note.taken', payload: { text: 'private words' } },
    format.placements,
    sensitiveFieldsOf(catalog).get('note.taken') ?? []
  )
  t.same(masked, { eventType: 'note.taken', payload: { text: '[redacted]' } })
})
