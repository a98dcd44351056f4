import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
  type SpanProcessor
} from '@opentelemetry/sdk-trace-base'
import t, { type Test } from 'tap'
import { BrokerError } from '../../src/brokers/broker.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import { xrayTraceHeader } from '../../src/brokers/aws/eventbridge.js'
import { LogCapture, TENANT, build, dataDir, exampleOf, post } from '../helper.js'
import { codes, readDoc, section, tableRows } from '../markdown.js'

// What a trace backend and a consumer see of the gateway's spans, with the SDK's in-memory exporter.

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'
const CALLER = `00-${TRACE_ID}-${CALLER_SPAN}-01`

/** The exported spans, and a way to await them instead of sleeping (a server span ends after the answer). */
function recorder () {
  const exporter = new InMemorySpanExporter()
  const spans = (kind: SpanKind) => exporter.getFinishedSpans().filter(s => s.kind === kind)
  let waiters: { kind: SpanKind, count: number, resolve: () => void }[] = []
  const ended: SpanProcessor = {
    onStart: () => {},
    onEnd: () => {
      const ready = waiters.filter(w => spans(w.kind).length >= w.count)
      waiters = waiters.filter(w => !ready.includes(w))
      for (const w of ready) w.resolve()
    },
    forceFlush: async () => {},
    shutdown: async () => {}
  }
  // The exporter first: when a waiter is woken, its span is among the exported ones.
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), ended] })
  /** Resolves once `count` spans of this kind have ended, with them. */
  const ofKind = async (kind: SpanKind, count: number): Promise<ReadableSpan[]> => {
    if (spans(kind).length < count) await new Promise<void>(resolve => waiters.push({ kind, count, resolve }))
    return spans(kind)
  }
  return {
    provider,
    spans,
    ofKind,
    /** The first server span, once it has ended. */
    server: async (): Promise<ReadableSpan> => (await ofKind(SpanKind.SERVER, 1))[0] as ReadableSpan
  }
}

const routesFile = {
  destinations: {
    orders: { broker: 'rabbitmq', exchange: 'orders.events' },
    billing: { broker: 'sqs', queueUrl: 'https://sqs.eu-central-1.amazonaws.com/123456789012/billing-events' }
  },
  routes: [{ types: ['call.*'], to: ['orders', 'billing'] }, { types: ['*'], to: ['orders'] }]
}

/** Two destinations, each a memory broker, both in CloudEvents envelopes. */
async function gateway (t: Test, tracing = true, logs?: LogCapture) {
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify(routesFile))
  const brokers = new Map<string, MemoryBroker>()
  const spans = recorder()
  const { app } = await build(t, { ROUTES_FILE: path, RETRY_MAX_ATTEMPTS: '1', ...(logs === undefined ? {} : { LOG_LEVEL: 'info' }) }, {
    ...(logs === undefined ? {} : { logStream: logs }),
    brokers: d => {
      const broker = new MemoryBroker(d.name)
      brokers.set(d.name, broker)
      return broker
    },
    ...(tracing ? { tracerProvider: spans.provider } : {})
  })
  return { app, spans, orders: brokers.get('orders') as MemoryBroker, billing: brokers.get('billing') as MemoryBroker }
}

const parentOf = (traceparent: string | undefined) => traceparent?.split('-')[2]

t.test('a request with a traceparent: the server span continues the caller\'s trace, producer spans are its children', async t => {
  const { app, spans, orders } = await gateway(t)
  const res = await app.inject(post(
    'speaker.onboarded',
    exampleOf('speaker.onboarded'),
    { traceparent: CALLER, 'x-correlation-id': 'corr-1' }
  ))
  t.equal(res.statusCode, 202)
  const server = await spans.server()
  t.equal(server.name, 'POST /v1/events/speaker.onboarded')
  t.equal(server.spanContext().traceId, TRACE_ID, 'same trace')
  t.equal(server.parentSpanContext?.spanId, CALLER_SPAN, 'child of the caller\'s span')
  t.match(server.attributes, {
    'http.request.method': 'POST',
    'http.route': '/v1/events/speaker.onboarded',
    'http.response.status_code': 202,
    'evg.event_type': 'speaker.onboarded',
    'evg.event_id': res.json().id,
    'evg.tenant_id': TENANT,
    'evg.correlation_id': 'corr-1'
  })
  t.equal(server.status.code, SpanStatusCode.UNSET)

  const [producer, ...others] = spans.spans(SpanKind.PRODUCER)
  t.equal(others.length, 0, 'one destination, one producer span')
  t.equal(producer?.name, 'send orders')
  t.equal(producer?.spanContext().traceId, TRACE_ID)
  t.equal(producer?.parentSpanContext?.spanId, server.spanContext().spanId, 'child of the server span')
  t.same(producer?.attributes, {
    'messaging.system': 'rabbitmq',
    'messaging.destination.name': 'orders.events',
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'send',
    'messaging.message.id': res.json().id,
    'evg.destination': 'orders',
    'evg.event_type': 'speaker.onboarded'
  })
  t.equal(orders.published.length, 1)
})

t.test('what a consumer sees: the message and its envelope carry the producer span, the stored event keeps the caller\'s', async t => {
  const { app, spans, orders } = await gateway(t)
  t.equal((await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded'), { traceparent: CALLER }))).statusCode, 202)
  const producer = spans.spans(SpanKind.PRODUCER)[0] as ReadableSpan
  const message = orders.published[0]
  const expected = `00-${TRACE_ID}-${producer.spanContext().spanId}-01`
  t.equal(message?.traceparent, expected, 'the AMQP header / SQS attribute / EventBridge TraceHeader value')
  t.equal(message?.envelope.traceparent, expected, 'the CloudEvents traceparent extension: the same context')
  t.equal(
    xrayTraceHeader(message?.traceparent),
    `Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=${producer.spanContext().spanId};Sampled=1`
  )
  t.equal(message?.event.traceparent, CALLER, 'the event as kept (idempotent repeats) is the caller\'s')
})

t.test('fan-out: two destinations, two producer spans, each message with its own', async t => {
  const { app, spans, orders, billing } = await gateway(t)
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent: CALLER }))).statusCode, 202)
  const server = await spans.server()
  const producers = new Map(spans.spans(SpanKind.PRODUCER).map(s => [s.attributes['evg.destination'], s]))
  t.same([...producers.keys()].sort(), ['billing', 'orders'])
  t.match(producers.get('billing')?.attributes, { 'messaging.system': 'aws_sqs', 'messaging.destination.name': 'billing-events' })
  for (const [name, broker] of [['orders', orders], ['billing', billing]] as const) {
    const producer = producers.get(name) as ReadableSpan
    t.equal(producer.parentSpanContext?.spanId, server.spanContext().spanId, `${name}: child of the server span`)
    t.equal(
      parentOf(broker.published[0]?.traceparent),
      producer.spanContext().spanId,
      `${name}: the message's parent is its own producer span`
    )
    t.equal(parentOf(broker.published[0]?.envelope.traceparent), producer.spanContext().spanId, `${name}: and so is its envelope's`)
  }
  t.equal(orders.published[0]?.event.id, billing.published[0]?.event.id, 'one event')
})

t.test('a batch: one server span, one producer span per destination covering its events', async t => {
  const { app, spans, orders, billing } = await gateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, traceparent: CALLER },
    payload: {
      events: [
        { type: 'call.ended', data: exampleOf('call.ended') },
        { type: 'speaker.onboarded', data: exampleOf('speaker.onboarded') },
        { type: 'nope', data: {} }
      ]
    }
  })
  t.equal(res.statusCode, 207)
  const server = await spans.server()
  t.equal(server.name, 'POST /v1/events')
  t.equal(spans.spans(SpanKind.SERVER).length, 1)
  const producers = new Map(spans.spans(SpanKind.PRODUCER).map(s => [s.attributes['evg.destination'], s]))
  t.equal(producers.size, 2)
  t.equal(producers.get('orders')?.attributes['messaging.batch.message_count'], 2, 'orders gets both valid events')
  t.equal(producers.get('billing')?.attributes['messaging.message.id'], billing.published[0]?.event.id, 'billing only the call')
  const orderParents = new Set(orders.published.map(m => parentOf(m.traceparent)))
  t.same([...orderParents], [producers.get('orders')?.spanContext().spanId], 'both messages name the one producer span')
})

t.test('a publish that fails: the producer span is an error typed by its EVG code, and so is the server span', async t => {
  const { app, spans, orders } = await gateway(t)
  orders.failNext(1, new BrokerError('refused', { retryable: false, reason: 'unroutable' }))
  const res = await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded'), { traceparent: CALLER }))
  t.equal(res.statusCode, 502)
  const server = await spans.server()
  const producer = spans.spans(SpanKind.PRODUCER)[0]
  t.equal(producer?.status.code, SpanStatusCode.ERROR)
  t.match(producer?.status.message, /orders refused the event/)
  t.equal(producer?.attributes['error.type'], 'EVG_BROKER_REJECTED')
  t.equal(server.status.code, SpanStatusCode.ERROR)
  t.match(server.attributes, {
    'http.response.status_code': 502,
    'error.type': 'EVG_BROKER_REJECTED',
    'evg.error_code': 'EVG_BROKER_REJECTED'
  })
})

t.test('a refused request has its server span, not an error one; probes have none', async t => {
  const { app, spans } = await gateway(t)
  t.equal((await app.inject('/health/live')).statusCode, 200)
  const res = await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-tenant-id': 'not-a-uuid' }))
  t.equal(res.statusCode, 400)
  const server = await spans.server()
  t.equal(server.name, 'POST /v1/events/call.ended')
  t.match(server.attributes, { 'http.response.status_code': 400, 'evg.error_code': 'EVG_BAD_CONTEXT' })
  t.notOk('evg.tenant_id' in server.attributes, 'a tenant id that was refused is not recorded')
  t.equal(server.status.code, SpanStatusCode.UNSET, 'the client\'s mistake, not the gateway\'s failure')
  t.equal(spans.spans(SpanKind.SERVER).length, 1, 'no span for /health/live')
  t.equal(spans.spans(SpanKind.PRODUCER).length, 0)
})

t.test('without a traceparent the server span starts a trace, and the message carries it', async t => {
  const { app, spans, orders } = await gateway(t)
  t.equal((await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded')))).statusCode, 202)
  const server = await spans.server()
  t.equal(server.parentSpanContext, undefined, 'a root span')
  const producer = spans.spans(SpanKind.PRODUCER)[0] as ReadableSpan
  t.equal(orders.published[0]?.traceparent, `00-${server.spanContext().traceId}-${producer.spanContext().spanId}-01`)
  t.equal(orders.published[0]?.event.traceparent, undefined)
})

t.test('a caller that does not sample: nothing is recorded, and the message says not sampled', async t => {
  const { app, spans, orders } = await gateway(t)
  const unsampled = `00-${TRACE_ID}-${CALLER_SPAN}-00`
  t.equal((await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded'), { traceparent: unsampled }))).statusCode, 202)
  await spans.provider.forceFlush()
  t.equal(spans.spans(SpanKind.SERVER).length + spans.spans(SpanKind.PRODUCER).length, 0)
  t.match(orders.published[0]?.traceparent, new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`), 'the same trace, flagged not sampled')
})

t.test('tracing off: the caller\'s traceparent reaches the messages unchanged, and no span is made', async t => {
  // A provider registered globally (as auto-instrumentation would) records nothing of the gateway's.
  const global = recorder()
  trace.setGlobalTracerProvider(global.provider)
  t.teardown(() => trace.disable())
  const { app, orders, billing } = await gateway(t, false)
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent: CALLER }))).statusCode, 202)
  for (const broker of [orders, billing]) {
    t.equal(broker.published[0]?.traceparent, CALLER, `${broker.name}: the message`)
    t.equal(broker.published[0]?.envelope.traceparent, CALLER, `${broker.name}: the envelope`)
  }
  await global.provider.forceFlush()
  t.equal(global.spans(SpanKind.SERVER).length + global.spans(SpanKind.PRODUCER).length, 0)
})

t.test('the access log line names the trace, so that a log search leads to it', async t => {
  const logs = new LogCapture()
  const { app } = await gateway(t, true, logs)
  await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent: CALLER, 'x-request-id': 'req-traced' }))
  t.match(logs.records.find(r => r.reqId === 'req-traced'), { msg: 'request completed', traceId: TRACE_ID })
})

t.test('docs/tracing.md lists every span attribute the gateway sets, and no other', async t => {
  const { app, spans, orders } = await gateway(t)
  orders.failNext(1, new BrokerError('refused', { retryable: false, reason: 'unroutable' }))
  await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded'), { traceparent: CALLER }))
  await app.inject(post('speaker.onboarded', exampleOf('speaker.onboarded'), { traceparent: CALLER }))
  await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: { events: [{ type: 'call.ended', data: exampleOf('call.ended') }, { type: 'call.ended', data: exampleOf('call.ended') }] }
  })
  const observed = (kind: SpanKind, list: ReadableSpan[]) => new Set(
    list.filter(s => s.kind === kind).flatMap(s => Object.keys(s.attributes))
  )
  const server = observed(SpanKind.SERVER, await spans.ofKind(SpanKind.SERVER, 3))
  // Set only when the client goes away before its answer, which inject cannot do.
  server.add('evg.client_aborted')
  const producer = observed(SpanKind.PRODUCER, spans.spans(SpanKind.PRODUCER))
  const doc = readDoc('docs/tracing.md')
  for (const [heading, attributes] of [['### Server span', server], ['### Producer span', producer]] as const) {
    const documented = tableRows(section(doc, heading) ?? '').map(r => codes(r[0] as string)[0] as string)
    t.same(documented.sort(), [...attributes].sort(), heading)
  }
})
