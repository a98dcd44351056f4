import { createHash } from 'node:crypto'
import t from 'tap'
import { Type } from 'typebox'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { compileWireFormat } from '../../src/envelopes/index.js'
import type { MessageBroker, MessageSpec } from '../../src/envelopes/message.js'
import { createEvent } from '../../src/envelopes/event.js'
import { TENANT, exampleOf } from '../helper.js'

const entry = (type: string) => BUILTIN_ENTRIES.find(e => e.type === type) as (typeof BUILTIN_ENTRIES)[number]
const format = (broker: MessageBroker, message: MessageSpec, type = 'survey.completed', schema: object = entry(type).schema) =>
  compileWireFormat({ envelope: 'cloudevents', message }, broker, { type, schema, source: 'svc', module: 'svc' })
const context = { tenantId: TENANT, userId: 'user-9', correlationId: 'corr-1' }
const eventOf = (type: string, data = exampleOf(type)) => createEvent(entry(type), data, context)

t.test('SQS: seed 000\'s group id, deduplication id and attributes, with the defaults beside them', async t => {
  const f = format('sqs', {
    groupId: 'campaign-{{data.campaign_id}}',
    deduplicationId: { $sha256: '{{type}}:{{data.call_id}}' },
    attributes: { event_type: '{{type}}', call_id: '{{data.call_id}}', attempts: '{{data.total_attempts}}', 'correlation-id': null }
  }, 'survey.not_reached')
  const event = eventOf('survey.not_reached')
  const data = exampleOf('survey.not_reached')
  t.same(f.message?.(event, undefined), {
    groupId: `campaign-${String(data.campaign_id)}`,
    deduplicationId: createHash('sha256').update(`survey.not_reached:${String(data.call_id)}`).digest('hex'),
    attributes: {
      'event-type': { type: 'String', value: 'survey.not_reached' },
      'tenant-id': { type: 'String', value: TENANT },
      'user-id': { type: 'String', value: 'user-9' },
      event_type: { type: 'String', value: 'survey.not_reached' },
      call_id: { type: 'String', value: String(data.call_id) },
      attempts: { type: 'Number', value: '3' }
    }
  }, 'a number is a Number attribute; null drops a default; a missing one (traceparent) is left out')
  t.equal(
    f.check?.(event),
    undefined,
    'the ids are UUIDs (ASCII, at most 45): only the number attribute is looked at per event, and it fits'
  )
})

t.test('RabbitMQ: routing key, properties and headers (the defaults, the declared, null dropping one)', async t => {
  const f = format('rabbitmq', {
    routingKey: 'surveys.{{data.campaign_id}}',
    properties: { type: 'Survey{{type}}', appId: 'surveys' },
    headers: { 'x-call': '{{data.call_id}}', 'x-version': 2, 'x-final': true, 'x-account-id': null }
  })
  const event = eventOf('survey.completed')
  t.same(f.message?.(event, 'tp'), {
    routingKey: `surveys.${String(exampleOf('survey.completed').campaign_id)}`,
    properties: { type: 'Surveysurvey.completed', appId: 'surveys' },
    headers: {
      'x-event-type': 'survey.completed',
      'x-tenant-id': TENANT,
      'x-correlation-id': 'corr-1',
      'x-user-id': 'user-9',
      traceparent: 'tp',
      'x-call': String(exampleOf('survey.completed').call_id),
      'x-version': 2,
      'x-final': true
    }
  })
})

t.test('EventBridge: seed 001\'s default bus, source and detail type', async t => {
  const f = format(
    'eventbridge',
    { busName: 'default', source: 'com.yourapp.transcription', detailType: 'BatchProcessingCompleted' },
    'batch.processing.completed'
  )
  t.same(
    f.message?.(eventOf('batch.processing.completed'), undefined),
    { busName: 'default', source: 'com.yourapp.transcription', detailType: 'BatchProcessingCompleted' }
  )
})

t.test('a value its broker would refuse stops the start, saying why', async t => {
  const cases: [MessageBroker, MessageSpec, string, RegExp][] = [
    [
      'sqs',
      { groupId: '{{data.refusal_reason}}' },
      'survey.refused',
      /^message\.groupId: the SQS MessageGroupId may be missing in survey\.refused; give it a fallback with \?\?$/
    ],
    ['sqs', { groupId: '{{data.answers}}' }, 'survey.completed', /can be an object or array in survey\.completed; it must be text/],
    [
      'sqs',
      { groupId: '{{user ?? tenant}}-{{data.refusal_reason ?? \'none\'}}' },
      'survey.refused',
      /the SQS MessageGroupId can be 629 characters long in survey\.refused, over the 128 characters it takes/
    ],
    [
      'sqs',
      { deduplicationId: 'dé-{{id}}' },
      'survey.refused',
      /'dé-\{\{id\}\}'|has characters the SQS MessageDeduplicationId cannot hold|printable ASCII/
    ],
    [
      'rabbitmq',
      { routingKey: 'x.{{data.transcript ?? \'\'}}' },
      'call.ended',
      /the routing key can be 200002 characters long in call\.ended, over the 255 bytes it takes/
    ],
    [
      'eventbridge',
      { detailType: '{{data.raw_transcript}}' },
      'batch.processing.completed',
      /the EventBridge DetailType can be 200000 characters long/
    ],
    [
      'sqs',
      { attributes: { a: '1', b: '1', c: '1', d: '1', e: '1', f: '1' } },
      'survey.completed',
      /11 attributes with the defaults .*; SQS takes at most 10: drop some defaults with null/
    ],
    ['sqs', { attributes: { 'AWS.trace': '{{id}}' } }, 'survey.completed', /message\.attributes\.AWS\.trace: an SQS attribute name/],
    ['sqs', { attributes: { blob: '{{data}}' } }, 'survey.completed', /message\.attributes\.blob: can be an object or array/]
  ]
  for (const [broker, message, type, pattern] of cases) {
    t.throws(() => format(broker, message, type), { name: 'TemplateError', message: pattern }, JSON.stringify(message))
  }
  t.doesNotThrow(
    () => format('sqs', { groupId: { $sha256: '{{data.refusal_reason ?? \'\'}}' } }, 'survey.refused'),
    'hashed, any text makes a valid id'
  )
  t.throws(
    () => format('rabbitmq', { routingKey: 'notes.{{data.note}}' }, 'call.ended', Type.Object({ note: Type.String() })),
    new RegExp(
      /^message\.routingKey: data\.note has no maxLength in call\.ended's schema, /.source +
      /so the routing key could be longer than the 255 bytes it takes; bound the field in the schema, or hash it/.source
    )
  )
  t.doesNotThrow(
    () => format('rabbitmq', { routingKey: 'calls.{{data.from_number}}.{{data.campaign_id ?? \'none\'}}' }, 'call.started'),
    'bounded: the E.164 number by its pattern (16), the campaign by its maxLength (128)'
  )
})

t.test('what only the event can tell is checked before it is taken: an id\'s characters, a key\'s bytes', async t => {
  const schema = Type.Object({ region: Type.String({ maxLength: 60 }), code: Type.String({ maxLength: 20 }) })
  const sqs = format('sqs', { groupId: 'region-{{data.region}}' }, 'call.ended', schema)
  const ok = { ...eventOf('call.ended'), data: { region: 'eu-central-1', code: 'x' } }
  t.equal(sqs.check?.(ok), undefined)
  t.same(
    sqs.check?.({ ...ok, data: { region: 'Zürich Nord', code: 'x' } }),
    [{ path: '/region', message: 'has characters the SQS MessageGroupId cannot hold (printable ASCII only) (groupId)' }]
  )
  const amqp = format('rabbitmq', { routingKey: '{{data.region}}.{{data.code}}.{{data.region}}' }, 'call.ended', schema)
  t.equal(amqp.check?.({ ...ok, data: { region: 'é'.repeat(50), code: 'x' } }), undefined, '50 two-byte characters twice: 203 bytes fit')
  t.same(
    amqp.check?.({ ...ok, data: { region: '€'.repeat(60), code: 'x' } })?.map(e => e.path),
    ['/region', '/code'],
    'over 255 bytes: each field that makes it'
  )
})

t.test('per event: an empty id, an event bus name\'s characters, SQS attribute values, headers past amqplib\'s buffer', async t => {
  const schema = Type.Object({ region: Type.String({ maxLength: 60 }), note: Type.String(), n: Type.Number() })
  const ok = { ...eventOf('call.ended'), data: { region: 'eu', note: 'fine', n: 3 } }
  const empty = format('sqs', { groupId: '{{data.region}}' }, 'call.ended', schema)
  t.equal(empty.check?.(ok), undefined)
  t.same(
    empty.check?.({ ...ok, data: { ...ok.data, region: '' } }),
    [{ path: '/region', message: 'makes the SQS MessageGroupId empty (groupId)' }],
    'an empty group id is refused before SQS would'
  )
  const bus = format('eventbridge', { busName: 'bus-{{data.region}}' }, 'call.ended', schema)
  t.same(
    bus.check?.({ ...ok, data: { ...ok.data, region: 'a b' } })?.map(e => e.message),
    ['has characters the EventBridge EventBusName cannot hold (letters, digits and / . - _ only, or an ARN) (busName)']
  )
  const attributes = format('sqs', { attributes: { note: '{{data.note}}', n: '{{data.n}}' } }, 'call.ended', schema)
  t.equal(attributes.check?.(ok), undefined)
  t.same(
    attributes.check?.({ ...ok, data: { ...ok.data, note: 'bell \u0007', n: 1e300 } })?.map(e => e.path),
    ['/note', '/n'],
    'a control character, a number SQS cannot hold'
  )
  const headers = format('rabbitmq', { headers: { 'x-note': '{{data.note}}' } }, 'call.ended', schema)
  t.equal(headers.check?.(ok), undefined)
  t.same(
    headers.check?.({ ...ok, data: { ...ok.data, note: 'x'.repeat(70_000) } }),
    [{ path: '/note', message: 'makes the AMQP headers larger than 60000 bytes (headers.x-note)' }]
  )
  t.equal(
    format('rabbitmq', { headers: { 'x-region': '{{data.region}}' } }, 'call.ended', schema).check,
    undefined,
    'headers proven small are not checked per event'
  )
})

t.test('fixed text a broker refuses, and what cannot be declared, stop the start', async t => {
  t.throws(
    () => format('eventbridge', { busName: 'my bus' }, 'call.ended'),
    /message\.busName: 'my bus' has characters the EventBridge EventBusName cannot hold/
  )
  t.throws(() => format('sqs', { groupId: '' } as MessageSpec, 'call.ended'), /message\.groupId: it makes the SQS MessageGroupId empty/)
  t.throws(
    () => format('rabbitmq', { properties: { messageId: '{{data.call_id}}' } } as unknown as MessageSpec, 'call.ended'),
    /message\.properties\.messageId: not a property a destination declares \(correlationId, type, appId; messageId is always the event id\)/
  )
})
