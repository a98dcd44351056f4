import t from 'tap'
import { PROFILES, PROFILE_NAMES } from '../../src/envelopes/index.js'
import type { GatewayEvent } from '../../src/event.js'
import { ENVELOPE_FIELDS } from '../../src/cli/envelope-fields.js'
import { TENANT } from '../helper.js'

const event: GatewayEvent = {
  id: '0192f0c4-7a3b-7c1d-9e2f-3a4b5c6d7e8f',
  type: 'speaker.onboarded',
  time: '2025-01-02T03:04:05.000Z',
  tenantId: TENANT,
  userId: 'user-9',
  correlationId: 'corr-42',
  data: { speaker_id: 'spk-1', name: 'John Doe' },
  routingKey: 'speaker.onboarded',
  aggregate: { type: 'Speaker', id: 'spk-1' }
}

t.test('every profile has its fields listed, and they are where that profile puts them', async t => {
  t.same(Object.keys(ENVELOPE_FIELDS).sort(), [...PROFILE_NAMES].sort())
  for (const name of PROFILE_NAMES) {
    const envelope = JSON.parse(PROFILES[name].encode(event, { source: 'communications', module: 'cc-lite' })) as Record<string, unknown>
    const f = ENVELOPE_FIELDS[name]
    t.equal(envelope[f.id], event.id, `${name}: id`)
    t.equal(envelope[f.type], event.type, `${name}: type`)
    t.equal(envelope[f.time], event.time, `${name}: time`)
    t.same(envelope[f.data], event.data, `${name}: data`)
    if (f.tenant === undefined) t.notOk(JSON.stringify(envelope).includes(TENANT), `${name}: no tenant in the body, as the field list says`)
    else t.equal(envelope[f.tenant], TENANT, `${name}: tenant`)
    if (f.correlation === undefined) t.notOk(JSON.stringify(envelope).includes('corr-42'), `${name}: no correlation id in the body`)
    else t.equal(envelope[f.correlation], 'corr-42', `${name}: correlation`)
    if (f.source !== undefined) t.equal(envelope[f.source], 'communications', `${name}: source`)
  }
})
