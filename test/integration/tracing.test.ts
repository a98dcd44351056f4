import './aws-env.js'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs'
import { SpanKind } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { startFauxqs } from 'fauxqs'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { dataDir, exampleOf, post, testConfig } from '../helper.js'
import { FakeEventBridge, type Entry } from './fake-eventbridge.js'

// The trace context as consumers of real transports read it: an SQS queue (fauxqs) and an
// EventBridge bus (a local PutEvents endpoint), one event sent to both.

const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false })
t.teardown(() => fauxqs.stop())
process.env.AWS_ENDPOINT_URL_SQS = fauxqs.address
const sqs = new SQSClient({})
t.teardown(() => sqs.destroy())

const fake = new FakeEventBridge()
fake.server.listen(0, '127.0.0.1')
await once(fake.server, 'listening')
t.teardown(() => fake.server.close())
process.env.AWS_ENDPOINT_URL_EVENTBRIDGE = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`
fake.buses.add('orders-bus')

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'

/** A gateway sending every type to a queue of its own and to the bus, its spans kept in memory. */
async function tracedGateway (t: Test, queue: string) {
  const queueUrl = fauxqs.createQueue(queue).queueUrl
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify({
    destinations: { queue: { broker: 'sqs', queueUrl }, bus: { broker: 'eventbridge', busName: 'orders-bus' } },
    routes: [{ types: ['*'], to: ['queue', 'bus'] }]
  }))
  const exporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const app = await buildApp(testConfig(t, { ROUTES_FILE: path }), { tracerProvider })
  t.teardown(() => app.close())
  await app.ready()
  return { queueUrl, exporter, app }
}

t.test('SQS and EventBridge: each message carries its own producer span, in the transport and in the envelope', async t => {
  const { queueUrl, exporter, app } = await tracedGateway(t, 'evg-tracing-1')

  const res = await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` }))
  t.equal(res.statusCode, 202)
  const producerSpans = exporter.getFinishedSpans().filter(s => s.kind === SpanKind.PRODUCER)
  const producers = new Map(producerSpans.map(s => [s.attributes['evg.destination'], s.spanContext().spanId]))
  t.equal(producers.size, 2)

  const received = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] }))
  const message = received.Messages?.[0]
  const fromQueue = `00-${TRACE_ID}-${producers.get('queue')}-01`
  t.equal(message?.MessageAttributes?.traceparent?.StringValue, fromQueue, 'SQS message attribute')
  t.equal(JSON.parse(message?.Body ?? '{}').traceparent, fromQueue, 'its envelope')

  const entry = fake.calls.at(-1)?.[0] as Entry
  t.equal(entry.TraceHeader, `Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=${producers.get('bus')};Sampled=1`, 'EventBridge TraceHeader')
  t.equal(JSON.parse(entry.Detail).traceparent, `00-${TRACE_ID}-${producers.get('bus')}-01`, 'its envelope')
})

t.test('events that share an SQS or EventBridge call: one send span per call, linked to each message\'s producer span', async t => {
  const { exporter, app } = await tracedGateway(t, 'evg-tracing-2')

  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    app.inject(post('call.ended', { ...exampleOf('call.ended'), call_id: `c-${i}` }, {
      traceparent: `00-${TRACE_ID}-${(i + 1).toString(16).padStart(16, '0')}-01`
    }))))
  t.same(answers.map(r => r.statusCode), answers.map(() => 202))
  const spans = exporter.getFinishedSpans()
  for (const [destination, system] of [['queue', 'aws_sqs'], ['bus', 'aws.eventbridge']] as const) {
    const producers = new Set(spans.filter(s => s.kind === SpanKind.PRODUCER && s.attributes['evg.destination'] === destination)
      .map(s => s.spanContext().spanId))
    t.equal(producers.size, 12, `${destination}: a producer span per request`)
    const calls = spans.filter(s => s.kind === SpanKind.CLIENT && s.attributes['messaging.system'] === system)
    t.ok(calls.length > 0 && calls.length < 12, `${destination}: ${calls.length} calls for 12 events`)
    t.ok(calls.every(s => s.name.startsWith('send ')), 'named send <destination>')
    const linked = calls.flatMap(s => s.links.map(l => l.context.spanId))
    t.same(new Set(linked), producers, 'every producer span linked from the call that carried its message, once')
    t.equal(linked.length, 12)
    t.same(calls.map(s => s.attributes['messaging.batch.message_count']), calls.map(s => s.links.length), 'count = links')
  }
})
