import { SpanKind } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import t from 'tap'
import { readTraceparent } from '../../src/observability/trace-context.js'
import { build, exampleOf, post } from '../helper.js'

// W3C Trace Context, "Versioning of traceparent": a later version is read by its first fields and
// goes on as version 00; version ff, and a version 00 with more fields, are invalid.

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN_ID = '00f067aa0ba902b7'
const ids = `${TRACE_ID}-${SPAN_ID}`

t.test('readTraceparent: version 00 as it came, a later one in version 00, anything else undefined', async t => {
  const cases: [string, string | undefined][] = [
    [`00-${ids}-01`, `00-${ids}-01`],
    [`00-${ids}-00`, `00-${ids}-00`],
    [`00-${ids}-03`, `00-${ids}-03`],
    [`01-${ids}-01`, `00-${ids}-01`],
    [`01-${ids}-01-extra`, `00-${ids}-01`],
    [`cc-${ids}-01-what-ever-comes`, `00-${ids}-01`],
    [`cc-${ids}-00-`, `00-${ids}-00`],
    // Of a later version's flags, only the sampled bit is known.
    [`cc-${ids}-ff`, `00-${ids}-01`],
    [`cc-${ids}-02`, `00-${ids}-00`],
    [`00-${ids}-01-extra`, undefined],
    [`00-${ids}-01-`, undefined],
    [`ff-${ids}-01`, undefined],
    [`ff-${ids}-01-extra`, undefined],
    [`01-${ids}-01extra`, undefined],
    [`01-${ids}-1`, undefined],
    [`0g-${ids}-01`, undefined],
    [`CC-${ids}-01`, undefined],
    [`01-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`, undefined],
    [`01-${'0'.repeat(32)}-${SPAN_ID}-01-extra`, undefined],
    [`01-${TRACE_ID}-${'0'.repeat(16)}-01-extra`, undefined],
    ['garbage', undefined],
    ['', undefined]
  ]
  for (const [value, read] of cases) t.equal(readTraceparent(value), read, value)
})

t.test('tracing off: a later version reaches the messages, the envelope and the kept event in version 00', async t => {
  const { app, broker } = await build(t)
  const cases: [string, string | undefined][] = [
    [`01-${ids}-01-extra`, `00-${ids}-01`],
    [`cc-${ids}-00-whatever`, `00-${ids}-00`],
    [`00-${ids}-01`, `00-${ids}-01`],
    [`00-${ids}-01-extra`, undefined],
    [`ff-${ids}-01`, undefined]
  ]
  for (const [traceparent, forwarded] of cases) {
    const res = await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent }))
    t.equal(res.statusCode, 202, `${traceparent}: accepted, valid or not`)
    const sent = broker.published.at(-1)
    t.equal(sent?.traceparent, forwarded, `${traceparent}: the message`)
    t.equal(sent?.envelope.traceparent, forwarded, `${traceparent}: the CloudEvents envelope`)
    t.equal(sent?.event.traceparent, forwarded, `${traceparent}: the event as kept`)
  }
})

t.test('tracing on: the server span of a request with a later version continues the caller\'s trace', async t => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const { app, broker } = await build(t, {}, { tracerProvider: provider })
  const res = await app.inject(post('call.ended', exampleOf('call.ended'), { traceparent: `01-${ids}-01-extra` }))
  t.equal(res.statusCode, 202)
  // The server span ends after the answer.
  let server: ReadableSpan | undefined
  for (let i = 0; i < 100 && server === undefined; i++) {
    server = exporter.getFinishedSpans().find(s => s.kind === SpanKind.SERVER)
    if (server === undefined) await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.equal(server?.spanContext().traceId, TRACE_ID, 'the caller\'s trace')
  t.equal(server?.parentSpanContext?.spanId, SPAN_ID, 'child of the caller\'s span')
  t.match(broker.published[0]?.traceparent, new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`), 'the message: the producer span, in version 00')
  t.equal(broker.published[0]?.event.traceparent, `00-${ids}-01`, 'the event as kept: the caller\'s, in version 00')
})
