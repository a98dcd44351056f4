import t from 'tap'
import { encodeCloudEvent, toCloudEvent } from '../../src/envelopes/cloudevents.js'
import { PROFILES, PROFILE_NAMES } from '../../src/envelopes/index.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { createEvent } from '../../src/event.js'
import { TENANT, exampleOf } from '../helper.js'

const entry = (type: string) => BUILTIN_ENTRIES.find(e => e.type === type) as (typeof BUILTIN_ENTRIES)[number]
const ctx = { tenantId: TENANT, userId: 'user-9', correlationId: 'corr-1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }
const options = { source: 'communications', module: 'cc-lite' }
const decode = (profile: keyof typeof PROFILES, type: string, context: Parameters<typeof createEvent>[2] = ctx) => {
  const event = createEvent(entry(type), exampleOf(type), context, undefined, Date.parse('2026-11-22T10:32:50.892Z'))
  return { event, envelope: JSON.parse(PROFILES[profile].encode(event, options)) }
}

t.test('cloudevents: CloudEvents 1.0 with the context extension attributes', async t => {
  const { event, envelope } = decode('cloudevents', 'call.ended')
  t.same(envelope, {
    specversion: '1.0', id: event.id, source: 'communications', type: 'call.ended', time: '2026-11-22T10:32:50.892Z',
    datacontenttype: 'application/json', dataschema: 'urn:event-gateway:event-types:call.ended',
    tenantid: TENANT, correlationid: 'corr-1', data: exampleOf('call.ended'), userid: 'user-9', traceparent: ctx.traceparent
  })
  t.equal(PROFILES.cloudevents.contentType, 'application/cloudevents+json')
  const anonymous = decode('cloudevents', 'call.ended', { tenantId: TENANT, correlationId: 'c' }).envelope
  t.notOk('userid' in anonymous || 'traceparent' in anonymous, 'absent rather than null when unknown')
})

t.test('ocelot: seed 003\'s Event Schema Standard, exactly', async t => {
  const { event, envelope } = decode('ocelot', 'call.ended')
  t.same(envelope, {
    id: event.id, type: 'call.ended', source: 'communications', timestamp: '2026-11-22T10:32:50.892Z',
    organizationId: TENANT, userId: 'user-9', data: exampleOf('call.ended'), metadata: { version: '1.0.0', module: 'cc-lite' }
  })
  const anonymous = JSON.parse(PROFILES.ocelot.encode(createEvent(entry('call.ended'), exampleOf('call.ended'), { tenantId: TENANT, correlationId: 'c' }), { source: 'communications' }))
  t.equal(anonymous.userId, null, 'userId is null when unknown, as the standard says')
  t.equal(anonymous.metadata.module, 'communications', 'module defaults to the source')
})

t.test('draft-genie: seed 004\'s TypeScript shape, the aggregate from the catalog', async t => {
  const { event, envelope } = decode('draft-genie', 'speaker.onboarded')
  t.same(envelope, {
    eventId: event.id, eventType: 'speaker.onboarded', aggregateId: 'spk-123', aggregateType: 'Speaker',
    timestamp: '2026-11-22T10:32:50.892Z', version: 1, correlationId: 'corr-1', payload: exampleOf('speaker.onboarded')
  })
  const aggregates = ['draft.ingested', 'draft.correction_vector_created', 'rag.dfn_generated', 'evaluation.failed'].map(type => {
    const e = decode('draft-genie', type).envelope
    return [e.aggregateType, e.aggregateId]
  })
  t.same(aggregates, [['Draft', 'drf-456'], ['CorrectionVector', 'cv-789'], ['DraftGenieNote', 'dfn-321'], ['Evaluation', 'eval-654']])
  const other = decode('draft-genie', 'call.ended')
  t.same([other.envelope.aggregateType, other.envelope.aggregateId], ['Call', other.event.id], 'a type without an aggregate is its own')
})

t.test('every profile keeps the event id, type and data', async t => {
  for (const name of PROFILE_NAMES) {
    const { event, envelope } = decode(name, 'survey.completed')
    const text = JSON.stringify(envelope)
    t.match(text, event.id, name)
    t.match(text, 'survey.completed', name)
    t.match(text, JSON.stringify(exampleOf('survey.completed')), name)
  }
})

t.test('cloudevents: the encoder writes exactly what JSON.stringify of the envelope object would', async t => {
  const contexts = [
    ctx,
    { tenantId: TENANT, correlationId: 'c' },
    { tenantId: TENANT, userId: 'u"\\1', accountId: 'acc-7', correlationId: 'c\u2028' }
  ]
  for (const type of ['call.ended', 'survey.completed', 'speaker.onboarded']) {
    for (const context of contexts) {
      const event = createEvent(entry(type), exampleOf(type), context)
      for (const source of ['communications', 'a "quoted" source']) {
        t.equal(encodeCloudEvent(event, source), JSON.stringify(toCloudEvent(event, source)), `${type}, ${source}`)
        t.equal(encodeCloudEvent(event, source, 'producer-tp'), JSON.stringify(toCloudEvent(event, source, 'producer-tp')))
      }
    }
  }
})
