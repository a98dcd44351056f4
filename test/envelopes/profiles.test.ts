import t from 'tap'
import { PROFILES, PROFILE_NAMES } from '../../src/envelopes/index.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { createEvent, type GatewayEvent } from '../../src/envelopes/event.js'
import { TENANT, envelopeOf, exampleOf } from '../helper.js'

const entry = (type: string) => BUILTIN_ENTRIES.find(e => e.type === type) as (typeof BUILTIN_ENTRIES)[number]
const ctx = {
  tenantId: TENANT,
  userId: 'user-9',
  correlationId: 'corr-1',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
}
const options = { source: 'communications', module: 'cc-lite' }
const decode = (profile: keyof typeof PROFILES, type: string, context: Parameters<typeof createEvent>[2] = ctx) => {
  const event = createEvent(entry(type), exampleOf(type), context, undefined, Date.parse('2026-11-22T10:32:50.892Z'))
  return { event, envelope: JSON.parse(envelopeOf(profile, event, options)) }
}

t.test('cloudevents: CloudEvents 1.0 with the context extension attributes', async t => {
  const { event, envelope } = decode('cloudevents', 'call.ended')
  t.same(envelope, {
    specversion: '1.0',
    id: event.id,
    source: 'communications',
    type: 'call.ended',
    time: '2026-11-22T10:32:50.892Z',
    datacontenttype: 'application/json',
    dataschema: 'urn:event-gateway:event-types:call.ended',
    tenantid: TENANT,
    correlationid: 'corr-1',
    data: exampleOf('call.ended'),
    userid: 'user-9',
    traceparent: ctx.traceparent
  })
  t.equal(PROFILES.cloudevents.contentType, 'application/cloudevents+json')
  const anonymous = decode('cloudevents', 'call.ended', { tenantId: TENANT, correlationId: 'c' }).envelope
  t.notOk('userid' in anonymous || 'traceparent' in anonymous, 'absent rather than null when unknown')
})

t.test('ocelot: seed 003\'s Event Schema Standard, exactly', async t => {
  const { event, envelope } = decode('ocelot', 'call.ended')
  t.same(envelope, {
    id: event.id,
    type: 'call.ended',
    source: 'communications',
    timestamp: '2026-11-22T10:32:50.892Z',
    organizationId: TENANT,
    userId: 'user-9',
    data: exampleOf('call.ended'),
    metadata: { version: '1.0.0', module: 'cc-lite' }
  })
  const anonymous = JSON.parse(envelopeOf(
    'ocelot',
    createEvent(entry('call.ended'), exampleOf('call.ended'), { tenantId: TENANT, correlationId: 'c' }),
    { source: 'communications' }
  ))
  t.equal(anonymous.userId, null, 'userId is null when unknown, as the standard says')
  t.equal(anonymous.metadata.module, 'communications', 'module defaults to the source')
})

t.test('draft-genie: seed 004\'s TypeScript shape, the aggregate from the catalog', async t => {
  const { event, envelope } = decode('draft-genie', 'speaker.onboarded')
  t.same(envelope, {
    eventId: event.id,
    eventType: 'speaker.onboarded',
    aggregateId: 'spk-123',
    aggregateType: 'Speaker',
    timestamp: '2026-11-22T10:32:50.892Z',
    version: 1,
    correlationId: 'corr-1',
    payload: exampleOf('speaker.onboarded')
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

// The hand-written encoders the built-in templates replaced, as they were (until 0.1.0): every
// profile must stay byte for byte what its consumers were reading.
const before = {
  cloudevents: (event: GatewayEvent, source: string, traceparent = event.traceparent) => {
    const dataschema = `urn:event-gateway:event-types:${event.type}`
    let json = `{"specversion":"1.0","id":${JSON.stringify(event.id)},"source":${JSON.stringify(source)},` +
      `"type":${JSON.stringify(event.type)},"time":${JSON.stringify(event.time)},"datacontenttype":"application/json",` +
      `"dataschema":${JSON.stringify(dataschema)},"tenantid":${JSON.stringify(event.tenantId)},` +
      `"correlationid":${JSON.stringify(event.correlationId)},"data":${JSON.stringify(event.data)}`
    if (event.userId !== undefined) json += `,"userid":${JSON.stringify(event.userId)}`
    if (event.accountId !== undefined) json += `,"accountid":${JSON.stringify(event.accountId)}`
    if (traceparent !== undefined) json += `,"traceparent":${JSON.stringify(traceparent)}`
    return `${json}}`
  },
  ocelot: (event: GatewayEvent, source: string, module?: string) => JSON.stringify({
    id: event.id,
    type: event.type,
    source,
    timestamp: event.time,
    organizationId: event.tenantId,
    userId: event.userId ?? null,
    data: event.data,
    metadata: { version: '1.0.0', module: module ?? source }
  }),
  'draft-genie': (event: GatewayEvent) => {
    const prefix = event.type.split('.')[0] ?? event.type
    return JSON.stringify({
      eventId: event.id,
      eventType: event.type,
      aggregateId: event.aggregate?.id ?? event.id,
      aggregateType: event.aggregate?.type ?? prefix.charAt(0).toUpperCase() + prefix.slice(1),
      timestamp: event.time,
      version: 1,
      correlationId: event.correlationId,
      payload: event.data
    })
  }
}

t.test('the built-in profiles write, byte for byte, what the hand-written encoders wrote', async t => {
  const contexts = [
    ctx,
    { tenantId: TENANT, correlationId: 'c' },
    { tenantId: TENANT, userId: 'u"\\1', accountId: 'acc-7', correlationId: 'c\u2028' }
  ]
  let compared = 0
  for (const e of BUILTIN_ENTRIES) {
    for (const context of contexts) {
      const event = createEvent(e, exampleOf(e.type), context)
      for (const source of ['communications', 'a "quoted" source']) {
        for (const module of [undefined, 'cc-lite']) {
          const options = { source, ...(module === undefined ? {} : { module }) }
          t.equal(envelopeOf('cloudevents', event, options), before.cloudevents(event, source), `cloudevents ${e.type}`)
          t.equal(
            envelopeOf('cloudevents', event, options, 'producer-tp'),
            before.cloudevents(event, source, 'producer-tp'),
            `cloudevents ${e.type}, a producer span`
          )
          t.equal(envelopeOf('ocelot', event, options), before.ocelot(event, source, module), `ocelot ${e.type}`)
          t.equal(envelopeOf('draft-genie', event, options), before['draft-genie'](event), `draft-genie ${e.type}`)
          compared += 4
        }
      }
    }
  }
  t.ok(compared >= BUILTIN_ENTRIES.length * 48, `${compared} envelopes compared`)
})

t.test('each profile has its content type', async t => {
  t.same(
    Object.fromEntries(PROFILE_NAMES.map(n => [n, PROFILES[n].contentType])),
    { cloudevents: 'application/cloudevents+json', ocelot: 'application/json', 'draft-genie': 'application/json' }
  )
})
