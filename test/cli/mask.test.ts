import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadCatalog } from '../../src/catalog/index.js'
import { ENVELOPE_FIELDS } from '../../src/cli/envelope-fields.js'
import { maskEnvelope, sensitiveFieldsOf } from '../../src/cli/mask.js'
import { PROFILES } from '../../src/envelopes/index.js'
import type { GatewayEvent } from '../../src/event.js'
import { createAjv } from '../../src/validation.js'
import { TENANT, dataDir } from '../helper.js'

const event = (type: string, data: Record<string, unknown>): GatewayEvent =>
  ({ id: 'id-1', type, time: new Date().toISOString(), tenantId: TENANT, correlationId: 'c', data, routingKey: type })

const builtins = sensitiveFieldsOf(loadCatalog({}, createAjv()))

t.test('sensitive fields are masked in data (cloudevents, ocelot) and in payload (draft-genie)', async t => {
  const call = event('call.ended', { call_id: 'c1', duration: 3, outcome: 'completed', transcript: 'TOP-SECRET' })
  for (const profile of ['cloudevents', 'ocelot', 'draft-genie'] as const) {
    const envelope = JSON.parse(PROFILES[profile].encode(call, { source: 's' })) as Record<string, unknown>
    const masked = maskEnvelope(envelope, ENVELOPE_FIELDS[profile], builtins)
    t.notOk(JSON.stringify(masked).includes('TOP-SECRET'), `${profile}: the transcript is not printed`)
    t.match(masked[ENVELOPE_FIELDS[profile].data], { transcript: '[redacted]', outcome: 'completed' }, `${profile}: the rest is as sent`)
  }
})

t.test('a null sensitive field stays null, and types without sensitive fields are printed as they came', async t => {
  const f = ENVELOPE_FIELDS.ocelot
  const nullTranscript = { type: 'call.ended', data: { transcript: null } }
  t.same(maskEnvelope(nullTranscript, f, builtins), nullTranscript)
  const campaign = { type: 'campaign.completed', data: { campaign_id: 'x' } }
  t.equal(maskEnvelope(campaign, f, builtins), campaign)
})

t.test('types from EVENT_CATALOG_DIR are masked too', async t => {
  const dir = dataDir(t)
  writeFileSync(join(dir, 'note.json'), JSON.stringify({
    type: 'note.taken',
    description: 'A note',
    sensitive: ['text'],
    schema: { type: 'object', properties: { text: { type: 'string' } }, examples: [{ text: 'x' }] }
  }))
  const sensitive = sensitiveFieldsOf(loadCatalog({ EVENT_CATALOG_DIR: dir }, createAjv()))
  const masked = maskEnvelope({ eventType: 'note.taken', payload: { text: 'private words' } }, ENVELOPE_FIELDS['draft-genie'], sensitive)
  t.same(masked, { eventType: 'note.taken', payload: { text: '[redacted]' } })
})
