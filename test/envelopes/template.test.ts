import t from 'tap'
import { Type } from 'typebox'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { compileWireFormat, type EnvelopeSpec } from '../../src/envelopes/index.js'
import { createEvent, type GatewayEvent } from '../../src/envelopes/event.js'
import { TENANT, exampleOf } from '../helper.js'

const entry = (type: string) => BUILTIN_ENTRIES.find(e => e.type === type) as (typeof BUILTIN_ENTRIES)[number]
const scope = (type: string, schema: object = entry(type).schema) => ({
  type,
  schema,
  ...(entry(type)?.aggregate === undefined ? {} : { aggregate: entry(type).aggregate }),
  source: 'svc',
  module: 'mod'
})
const compile = (
  envelope: EnvelopeSpec,
  type = 'call.ended',
  schema?: object
) => compileWireFormat({ envelope }, 'local', scope(type, schema))
const full = {
  tenantId: TENANT,
  userId: 'user-9',
  accountId: 'acct-1',
  correlationId: 'corr-1',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
}
const bare = { tenantId: TENANT, correlationId: 'corr-1' }
const eventOf = (
  type: string,
  context: Parameters<typeof createEvent>[2] = full,
  data = exampleOf(type)
): GatewayEvent => createEvent(entry(type), data, context)
/** Encodes, and checks the text is the JSON of what it parses to (so commas, quotes and escapes are right). */
const encode = (envelope: EnvelopeSpec, event: GatewayEvent, type = event.type, traceparent?: string): unknown => {
  const text = compile(envelope, type).encode(event, traceparent)
  const value = JSON.parse(text) as unknown
  if (JSON.stringify(value) !== text) throw new Error(`not canonical JSON: ${text}`)
  return value
}

t.test('a placeholder alone keeps the JSON type of its value; among text it makes a text', async t => {
  const event = eventOf('call.ended')
  t.same(encode(
    { id: '{{id}}', n: '{{data.duration}}', d: '{{data}}', key: '{{routingKey}}', s: 'call {{data.call_id}} took {{data.duration}} s' },
    event
  ), {
    id: event.id, n: 180, d: exampleOf('call.ended'), key: 'comms.call.ended', s: 'call call-7f3a9c took 180 s'
  })
  t.same(encode('{{data}}', event), exampleOf('call.ended'), 'the data alone, as Dapr\'s raw payloads')
  t.same(encode(['{{type}}', 1, true, null, { nested: ['{{tenant}}'] }], event), ['call.ended', 1, true, null, { nested: [TENANT] }])
})

t.test('a value that may be missing: left out of an object, null in an array or alone; ?? gives a fallback', async t => {
  const template = {
    user: '{{user}}',
    account: '{{account ?? null}}',
    who: '{{user ?? \'system\'}}',
    list: ['{{user}}', '{{account}}'],
    tail: '{{traceparent}}'
  }
  t.same(encode(template, eventOf('call.ended', bare)), { account: null, who: 'system', list: [null, null] })
  t.same(
    encode(template, eventOf('call.ended', full)),
    { user: 'user-9', account: 'acct-1', who: 'user-9', list: ['user-9', 'acct-1'], tail: full.traceparent }
  )
  t.equal(compile('{{user}}').encode(eventOf('call.ended', bare)), 'null')
  t.same(
    encode(
      { chain: '{{data.transcript ?? user ?? \'none\'}}' },
      eventOf('call.ended', full, { ...exampleOf('call.ended'), transcript: null })
    ),
    { chain: 'user-9' },
    'a null passes on to the next'
  )
})

t.test('objects whose first members may be missing still get their commas right', async t => {
  const template = { a: '{{user}}', b: '{{account}}', inner: { c: '{{user}}', d: 'x', e: '{{account}}' }, f: '{{traceparent}}' }
  const contexts: { tenantId: string, correlationId: string, userId?: string, accountId?: string, traceparent?: string }[] = [
    bare,
    full,
    { ...bare, userId: 'u' },
    { ...bare, accountId: 'a' },
    { ...bare, traceparent: full.traceparent }
  ]
  for (const context of contexts) {
    const value = encode(template, eventOf('call.ended', context)) as Record<string, unknown>
    t.same(value.inner, {
      ...(context.userId === undefined ? {} : { c: context.userId }),
      d: 'x',
      ...(context.accountId === undefined ? {} : { e: context.accountId })
    })
  }
  t.same(encode({ a: '{{user}}' }, eventOf('call.ended', bare)), {}, 'an object may end up empty')
})

t.test('the trace context is the message\'s own, else the caller\'s', async t => {
  const event = eventOf('call.ended')
  t.same(encode({ tp: '{{traceparent}}' }, event, 'call.ended', 'producer-span'), { tp: 'producer-span' })
  t.same(encode({ tp: '{{traceparent}}' }, event), { tp: full.traceparent })
  t.ok(compile({ tp: '{{traceparent}}' }).usesTraceparent)
  t.ok(compile('cloudevents').usesTraceparent, 'cloudevents carries it')
  t.notOk(compile('ocelot').usesTraceparent, 'ocelot does not: destinations may share its body')
})

t.test('"...": "{{data}}" merges the data\'s fields among the template\'s (seed 000\'s flat body)', async t => {
  const event = eventOf('survey.refused')
  const flat = { event_id: '{{id}}', event_type: '{{type}}', timestamp: '{{time}}', '...': '{{data}}' }
  t.same(encode(flat, event), { event_id: event.id, event_type: 'survey.refused', timestamp: event.time, ...exampleOf('survey.refused') })
  t.same(
    encode({ '...': '{{data}}', tail: 1 }, eventOf('survey.refused', bare, { ...exampleOf('survey.refused') })),
    { ...exampleOf('survey.refused'), tail: 1 },
    'first, then the others'
  )
  // An open object (any keys) cannot be checked at start: a key the template has is left out of the merge.
  const openSchema = Type.Object({ details: Type.Record(Type.String(), Type.Unknown()) })
  const open = compile({ id: '{{id}}', '...': '{{data.details}}' }, 'call.ended', openSchema)
  const event2 = { ...eventOf('call.ended'), data: { details: { id: 'forged', role: 'admin' } } }
  t.same(JSON.parse(open.encode(event2)), { id: event2.id, role: 'admin' })
  t.throws(
    () => compile({ call_id: '{{id}}', '...': '{{data}}' }),
    /"\.\.\." would write call_id twice: data of call\.ended has it, and so does the template/
  )
  t.throws(() => compile({ '...': '{{data.transcript}}' }), /merges an object of the data/)
})

t.test('$sha256 hashes a text (hex), as seed 000 makes its deduplication ids', async t => {
  const event = eventOf('survey.completed')
  const { createHash } = await import('node:crypto')
  const want = createHash('sha256').update(`survey.completed:${String(exampleOf('survey.completed').call_id)}`).digest('hex')
  t.same(encode({ dedupe: { $sha256: '{{type}}:{{data.call_id}}' } }, event), { dedupe: want })
  t.same(encode({ constant: { $sha256: 'x' } }, event), { constant: createHash('sha256').update('x').digest('hex') })
})

t.test('constants of the type and destination are written once, at start', async t => {
  const event = eventOf('speaker.onboarded')
  t.same(
    encode({ t: '{{type}}', s: '{{source}}', m: '{{module}}', a: '{{aggregate.type}}', i: '{{aggregate.id}}', u: 'urn:{{type}}' }, event),
    { t: 'speaker.onboarded', s: 'svc', m: 'mod', a: 'Speaker', i: 'spk-123', u: 'urn:speaker.onboarded' }
  )
  const call = eventOf('call.ended')
  t.same(
    encode({ a: '{{aggregate.type}}', i: '{{aggregate.id}}' }, call),
    { a: 'Call', i: call.id },
    'a type without an aggregate is its own'
  )
})

t.test('values that need escaping come out as JSON.stringify writes them', async t => {
  const event = eventOf(
    'call.ended',
    { tenantId: TENANT, userId: 'u"\\\u2028<', correlationId: 'c' },
    { ...exampleOf('call.ended'), transcript: 'line\nbreak "quoted" \u0000' }
  )
  t.same(encode({ u: '{{user}}', text: '{{user ?? \'\'}} said {{data.transcript ?? \'\'}}', tr: '{{data.transcript}}' }, event), {
    u: 'u"\\\u2028<', text: 'u"\\\u2028< said line\nbreak "quoted" \u0000', tr: 'line\nbreak "quoted" \u0000'
  })
})

t.test('a template that cannot work for a type is refused at start, saying where and why', async t => {
  const cases: [EnvelopeSpec, string, RegExp][] = [
    [
      { x: '{{data.call}}' },
      'call.ended',
      /^envelope\.x: data\.call is not a field of call\.ended \(its data has call_id, duration, outcome, transcript\)$/
    ],
    [
      { x: '{{tenantId}}' },
      'call.ended',
      /envelope\.x: \{\{tenantId\}\} is not a field of the event; the fields are id, type, time, tenant, user/
    ],
    [
      { x: 'id {{data}}' },
      'call.ended',
      /envelope\.x: \{\{data\}\} can be object in call\.ended; only text, numbers and booleans make part of a text/
    ],
    [{ x: 'said {{data.transcript}}' }, 'call.ended', /may be missing or null in call\.ended; give it a fallback/],
    [{ x: ['{{user}} x'] }, 'call.ended', /envelope\.x\.0: \{\{user\}\} may be missing/],
    [{ x: '{{id' }, 'call.ended', /a \{\{ without its closing \}\}/],
    [{ x: '${id}' }, 'call.ended', /placeholders are written \{\{ \}\}/],
    [{ x: { $md5: '{{id}}' } }, 'call.ended', /\$md5 is not a function \(the functions: \$sha256\)/],
    [{ x: '{{\'a\' ?? id}}' }, 'call.ended', /the literal 'a' must come last/],
    [{ x: '{{ }}' }, 'call.ended', /an empty expression/],
    ['avro', 'call.ended', /'avro' is not an envelope profile \(the profiles: cloudevents, ocelot, draft-genie\)/],
    [{ a: { b: { c: '{{data.outcome.deep}}' } } }, 'call.ended', /^envelope\.a\.b\.c: data\.outcome\.deep is not a field of call\.ended$/]
  ]
  for (const [template, type, message] of cases) {
    t.throws(() => compile(template, type), { name: 'TemplateError', message }, JSON.stringify(template))
  }
})

t.test('the data\'s schema decides: nested objects, records and open objects', async t => {
  const schema = Type.Object({
    who: Type.Object(
      { name: Type.String({ maxLength: 10 }), tags: Type.Optional(Type.Array(Type.String())) },
      { additionalProperties: false }
    ),
    scores: Type.Record(Type.String(), Type.Number()),
    anything: Type.Optional(Type.Unknown())
  }, { additionalProperties: false })
  const format = compile(
    { n: '{{data.who.name}}', s: '{{data.scores.bleu}}', a: '{{data.anything}}', t: '{{data.who.tags}}' },
    'call.ended',
    schema
  )
  const event = { ...eventOf('call.ended'), data: { who: { name: 'Ann' }, scores: { bleu: 0.5 } } }
  t.same(JSON.parse(format.encode(event)), { n: 'Ann', s: 0.5 })
  t.throws(
    () => compile({ n: 'x {{data.scores.bleu}}' }, 'call.ended', schema),
    /may be missing in call\.ended/,
    'a record\'s key may be missing'
  )
  t.throws(
    () => compile({ n: '{{data.who.age}}' }, 'call.ended', schema),
    /data\.who\.age is not a field of call\.ended \(data\.who has name, tags\)/
  )
})

t.test('literals may hold ?? and }}; names of the prototype are neither profiles nor fields', async t => {
  t.same(encode({ a: '{{user ?? \'a??b\'}}', b: '{{user ?? \'}}\'}}!' }, eventOf('call.ended', bare)), { a: 'a??b', b: '}}!' })
  t.throws(() => compile('toString'), /'toString' is not an envelope profile/)
  t.throws(() => compile('constructor'), /'constructor' is not an envelope profile/)
  t.throws(() => compile({ x: '{{constructor}}' }), { name: 'TemplateError', message: /\{\{constructor\}\} is not a field of the event/ })
  t.throws(() => compile({ x: '{{data.__proto__}}' }), { name: 'TemplateError', message: /data\.__proto__ is not a field of call\.ended/ })
})

t.test('a field inside an object that may be null may be missing', async t => {
  const schema = Type.Object({ who: Type.Union([Type.Object({ name: Type.String({ maxLength: 10 }) }), Type.Null()]) })
  t.throws(
    () => compile({ n: 'by {{data.who.name}}' }, 'call.ended', schema),
    /\{\{data\.who\.name\}\} may be missing in call\.ended; give it a fallback/
  )
  const format = compile({ n: 'by {{data.who.name ?? \'nobody\'}}' }, 'call.ended', schema)
  t.same(JSON.parse(format.encode({ ...eventOf('call.ended'), data: { who: null } })), { n: 'by nobody' })
})
