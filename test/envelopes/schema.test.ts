import { Ajv } from 'ajv'
import t from 'tap'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { compileWireFormat, PROFILE_NAMES, type EnvelopeSpec } from '../../src/envelopes/index.js'
import { createEvent } from '../../src/envelopes/event.js'
import { TENANT, exampleOf } from '../helper.js'

// The schema of what a template writes (the AsyncAPI document's payloads): every envelope the
// encoder writes for a type is valid against it, with and without the optional context, and it
// says what consumers can count on (required fields, constants, no other keys).

const entry = (type: string) => BUILTIN_ENTRIES.find(e => e.type === type) as (typeof BUILTIN_ENTRIES)[number]
const scope = (type: string) => ({
  type,
  schema: entry(type).schema,
  ...(entry(type).aggregate === undefined ? {} : { aggregate: entry(type).aggregate }),
  source: 'svc',
  module: 'mod'
})

function check (envelope: EnvelopeSpec, type: string) {
  const format = compileWireFormat({ envelope }, 'local', scope(type))
  const ajv = new Ajv({ strict: false, allErrors: true })
  ajv.addSchema(entry(type).schema, 'data')
  const schema = format.schema('data#')
  const validate = ajv.compile(schema)
  const contexts = [
    { tenantId: TENANT, correlationId: 'corr-1' },
    {
      tenantId: TENANT,
      correlationId: 'corr-1',
      userId: 'u-1',
      accountId: 'a-1',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    }
  ]
  const bodies = contexts.map(ctx => JSON.parse(format.encode(createEvent(entry(type), exampleOf(type), ctx), ctx.traceparent)) as unknown)
  return { schema: schema as Record<string, unknown>, validate, bodies }
}

for (const profile of PROFILE_NAMES) {
  t.test(`profile ${profile}: every type's envelope matches its schema, with and without the optional context`, async t => {
    for (const { type } of BUILTIN_ENTRIES) {
      const { validate, bodies } = check(profile, type)
      for (const body of bodies) t.ok(validate(body), `${type}`, { errors: validate.errors })
    }
  })
}

t.test('cloudevents: what a consumer can count on', async t => {
  const { schema, validate, bodies } = check('cloudevents', 'call.ended')
  t.match(schema, {
    type: 'object',
    additionalProperties: false,
    properties: { specversion: { const: '1.0' }, type: { const: 'call.ended' }, data: { $ref: 'data#' }, tenantid: { type: 'string' } }
  })
  t.ok((schema.required as string[]).includes('tenantid'))
  t.notOk((schema.required as string[]).includes('userid'), 'the user is optional: absent when unknown')
  t.notOk(validate({ ...(bodies[0] as object), type: 'other.type' }), 'another type is refused')
  t.notOk(validate({ ...(bodies[0] as object), extra: 1 }), 'a key the envelope never writes is refused')
})

t.test('a template: a spread, a field of the data, an array, a function and a fallback', async t => {
  const template = {
    '...': '{{data}}',
    kind: '{{type}}',
    who: ['{{tenant}}', '{{user}}'],
    secs: '{{data.duration}}',
    digest: { $sha256: '{{tenant}}:{{id}}' },
    user: '{{user ?? null}}',
    version: 2
  }
  const { schema, validate, bodies } = check(template, 'call.ended')
  for (const body of bodies) t.ok(validate(body), 'written envelopes match', { errors: validate.errors })
  t.match(schema, {
    properties: {
      call_id: { type: 'string' },
      kind: { const: 'call.ended' },
      who: { type: 'array', items: [{ type: 'string' }, { anyOf: [{ type: 'string' }, { type: 'null' }] }] },
      digest: { type: 'string', maxLength: 64 },
      version: { const: 2 }
    }
  })
  t.ok((schema.required as string[]).includes('call_id'), 'the data\'s required fields stay required')
  t.notOk(validate({ ...(bodies[0] as object), version: 3 }))
  t.notOk(validate({ ...(bodies[0] as object), who: [TENANT, 'u', 'extra'] }), 'the array has exactly its items')
})
