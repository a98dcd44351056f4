import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { classifyKafkaError } from '../../src/brokers/kafka/errors.js'
import { BUILTIN_ENTRIES, loadCatalog } from '../../src/catalog/index.js'
import { createEvent } from '../../src/envelopes/event.js'
import { loadRouting } from '../../src/routing/index.js'
import { createAjv } from '../../src/validation/index.js'
import { TENANT, dataDir, exampleOf, testConfig } from '../helper.js'

// A Kafka destination's wire format as its consumers get it (topic, key, headers, value), compiled
// from a routes file, and librdkafka's errors as the answers clients see. The records themselves
// are tested against librdkafka's mock cluster (test/integration/kafka.test.ts).

function kafka (t: Test, destination: Record<string, unknown>, env: Record<string, string> = {}) {
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify({
    destinations: { k: { broker: 'kafka', brokers: 'kafka-1:9092,kafka-2:9092', ...destination }, store: { broker: 'local' } },
    routes: [{ types: ['audit.*', 'notification.*', 'domain.*'], to: ['k'] }, { types: ['*'], to: ['store'] }]
  }))
  return () => loadRouting(testConfig(t, { ROUTES_FILE: path, ...env }), BUILTIN_ENTRIES, createAjv(), env)
}

const catalog = loadCatalog({}, createAjv())
function event (type: string, data = exampleOf(type), userId?: string) {
  const entry = catalog.get(type)
  if (entry === undefined) throw new Error(type)
  return createEvent(entry, data, { tenantId: TENANT, correlationId: 'corr-1', ...(userId === undefined ? {} : { userId }) })
}

t.test('topic and key are templates of the event; a key that is missing leaves the record without one', async t => {
  const [d] = kafka(t, {
    topic: 'marty.{{data.service_name ?? source}}.{{data.aggregate_type}}.{{data.event_type}}',
    key: '{{data.aggregate_id}}',
    formats: [
      { types: ['audit.recorded'], message: { topic: 'marty.audit.events', key: '{{data.resource_id ?? null}}' } },
      { types: ['notification.*'], message: { topic: 'marty.notification.events', key: '{{data.recipient_type}}' } }
    ]
  })().destinations
  t.match(d, { broker: 'kafka', brokers: 'kafka-1:9092,kafka-2:9092', clientId: 'event-gateway', compression: 'none' })
  const domain = d?.formats.get('domain.event')
  t.match(domain?.message?.(event('domain.event'), undefined), { topic: 'marty.user-service.user.user_created', key: 'user-123' })
  const unnamed = { ...exampleOf('domain.event'), service_name: undefined }
  t.equal(domain?.message?.(event('domain.event', unnamed), undefined).topic, 'marty.event-gateway.user.user_created',
    'without service_name, the destination\'s source')
  const audit = d?.formats.get('audit.recorded')
  t.match(audit?.message?.(event('audit.recorded'), undefined), { topic: 'marty.audit.events', key: 'user-123' })
  const anonymous = { ...exampleOf('audit.recorded'), resource_id: undefined }
  const unkeyed = audit?.message?.(event('audit.recorded', anonymous), undefined)
  t.match(unkeyed, { topic: 'marty.audit.events' })
  t.notOk(unkeyed !== undefined && 'key' in unkeyed, 'no key')
})

t.test('a topic an event would make that Kafka refuses is a 400 naming the field; one no event can fit stops the start', async t => {
  const [d] = kafka(t, { topic: 'audit.{{data.action}}', formats: [{ types: ['notification.*', 'domain.*'], message: { topic: 'x' } }] })()
    .destinations
  const format = d?.formats.get('audit.recorded')
  t.equal(format?.check?.(event('audit.recorded')), undefined, 'create_user fits')
  t.match(format?.check?.(event('audit.recorded', { ...exampleOf('audit.recorded'), action: 'create user!' })), [
    { path: '/action', message: /characters the Kafka topic cannot hold/ }
  ])
  t.throws(kafka(t, { topic: 'audit events' }), { message: /topic .*'audit events' has characters the Kafka topic cannot hold/ })
  t.throws(kafka(t, { topic: '{{type}}', formats: [{ types: ['domain.event'], message: { topic: '{{data.event_data}}' } }] }), {
    message: /formats\.0\.message\.topic \(domain\.event\): .*object/
  })
})

t.test('cloudevents over Kafka: binary by default (ce_ headers, the data as the value), structured when asked', async t => {
  const binary = kafka(t, { topic: 'events', envelope: 'cloudevents' })().destinations[0]?.formats.get('notification.requested')
  const e = event('notification.requested', exampleOf('notification.requested'), 'user-9')
  t.equal(binary?.envelope, 'cloudevents')
  t.same(JSON.parse(binary?.encode(e) ?? ''), exampleOf('notification.requested'), 'the value is the data')
  t.match(binary?.message?.(e, undefined).headers, {
    ce_specversion: '1.0',
    ce_id: e.id,
    ce_type: 'notification.requested',
    ce_source: 'event-gateway',
    ce_time: e.time,
    ce_tenantid: TENANT,
    ce_userid: 'user-9',
    'content-type': 'application/json',
    'x-event-type': 'notification.requested'
  })
  t.notOk('ce_accountid' in (binary?.message?.(e, undefined).headers ?? {}), 'an attribute without a value is no header')
  const structured = kafka(t, { topic: 'events', envelope: 'cloudevents', cloudevents: 'structured' })().destinations[0]
  t.match(JSON.parse(structured?.formats.get('notification.requested')?.encode(e) ?? ''), { specversion: '1.0', id: e.id })
})

t.test('brokers: the destination\'s, else KAFKA_BROKERS; neither stops the start naming the field', async t => {
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify({ destinations: { k: { broker: 'kafka', topic: 't' } }, routes: [{ types: ['*'], to: ['k'] }] }))
  const load = (env: Record<string, string>) => loadRouting(testConfig(t, { ROUTES_FILE: path, ...env }), BUILTIN_ENTRIES, createAjv(), {})
  t.match(load({ KAFKA_BROKERS: 'k1:9092' }).destinations[0], { brokers: 'k1:9092' })
  const required = 'destinations.k.brokers: is required when KAFKA_BROKERS is not set (host:port[,host:port…])'
  t.throws(() => load({}), { message: `ROUTES_FILE: ${path}: ${required}` })
  t.throws(() => testConfig(t, { KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' }), { message: /KAFKA_SASL_USERNAME: .* are required/ })
})

t.test('librdkafka errors as answers: too large 413, refused for good 502, the rest worth another try', async t => {
  const too = classifyKafkaError({ code: 10, message: 'Broker: Message size too large' }, 't')
  t.match(too, { tooLarge: true, retryable: false, reason: 'too_large' })
  const denied = classifyKafkaError({ code: 29, message: 'Broker: Topic authorization failed' }, 't')
  t.match(denied, { retryable: false, reason: 'access_denied' })
  t.match(classifyKafkaError({ code: -188, message: 'Local: Unknown topic' }, 't'), { retryable: false, reason: 'unknown_topic' })
  t.match(classifyKafkaError({ code: -192, message: 'Local: Message timed out' }, 't'), { retryable: true, reason: 'timeout' })
  t.match(classifyKafkaError({ code: -184, message: 'Local: Queue full' }, 't'), { retryable: true, reason: 'overloaded' })
  t.match(classifyKafkaError({ code: -187, message: 'Local: All broker connections are down' }, 't'), { retryable: true, down: true })
  t.match(classifyKafkaError(new Error('odd'), 't'), { retryable: true, reason: 'server_error', message: "Kafka: odd (topic 't')" })
})
