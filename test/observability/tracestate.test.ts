import { SpanKind } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import t from 'tap'
import { messageAttributes } from '../../src/brokers/aws/sqs.js'
import { PublishOptions } from '../../src/brokers/rabbitmq/message.js'
import { readTracestate } from '../../src/observability/trace-context.js'
import { build, exampleOf, post } from '../helper.js'

// W3C Trace Context's tracestate goes with the traceparent: into the event, the span's context,
// every broker's message (header, attribute) and the CloudEvents envelope; never without one.

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN_ID = '00f067aa0ba902b7'
const traceparent = `00-${TRACE_ID}-${SPAN_ID}-01`

t.test('readTracestate: valid members kept in order, invalid ones dropped, over 512 characters dropped whole', async t => {
  t.equal(readTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  const two = readTracestate(['congo=t61rcWkgMzE', 'rojo=00f067aa0ba902b7'])
  t.equal(two, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', 'two headers: one list')
  t.equal(readTracestate('congo=t61rcWkgMzE,BAD KEY=x,rojo=1'), 'congo=t61rcWkgMzE,rojo=1', 'an invalid member dropped')
  t.equal(readTracestate('garbage'), undefined)
  t.equal(readTracestate(''), undefined)
  t.equal(readTracestate(undefined), undefined)
  t.equal(readTracestate(`a=${'x'.repeat(520)}`), undefined, 'over 512 characters')
})

t.test('tracing off: the caller\'s tracestate reaches the event, the message and the envelope, beside its traceparent only', async t => {
  const { app, broker } = await build(t)
  const tracestate = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent, tracestate }))).statusCode, 202)
  const sent = broker.published.at(-1)
  t.equal(sent?.event.tracestate, tracestate, 'the event as kept')
  t.equal(sent?.envelope.tracestate, tracestate, 'the CloudEvents envelope (distributed tracing extension)')
  if (sent === undefined) return
  const amqp = new PublishOptions('test').for(sent)
  t.equal(amqp.headers?.tracestate, tracestate, 'RabbitMQ header')
  t.equal(messageAttributes(sent).tracestate, undefined, 'not an SQS default attribute (SQS takes 10; a destination may declare it)')

  t.equal((await app.inject(post('call.ended', exampleOf('call.ended'), { tracestate }))).statusCode, 202)
  const alone = broker.published.at(-1)
  t.equal(alone?.event.tracestate, undefined, 'without a traceparent it is ignored')
  t.equal(alone?.envelope.tracestate, undefined)
  if (alone !== undefined) t.equal(new PublishOptions('test').for(alone).headers?.tracestate, undefined)
})

t.test('tracing on: the server and producer spans carry the caller\'s tracestate, and so do the messages', async t => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const { app, broker } = await build(t, {}, { tracerProvider: provider })
  const tracestate = 'vendor=abc123'
  t.equal((await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent, tracestate }))).statusCode, 202)
  let server: ReadableSpan | undefined
  for (let i = 0; i < 100 && server === undefined; i++) {
    server = exporter.getFinishedSpans().find(s => s.kind === SpanKind.SERVER)
    if (server === undefined) await new Promise(resolve => setTimeout(resolve, 20)) // the span ends after the answer
  }
  t.equal(server?.spanContext().traceState?.serialize(), tracestate, 'the server span')
  const producer = exporter.getFinishedSpans().find(s => s.kind === SpanKind.PRODUCER)
  t.equal(producer?.spanContext().traceState?.serialize(), tracestate, 'the producer span')
  const sent = broker.published.at(-1)
  t.match(sent?.traceparent, new RegExp(`^00-${TRACE_ID}-`), 'the message: the producer span\'s traceparent')
  t.equal(sent?.envelope.tracestate, tracestate, 'beside it, the tracestate')
})
