import t from 'tap'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { compileProtection, parsePointer, ProtectionError, type ProtectRule } from '../../src/protection/rules.js'
import { decryptValue } from '../../src/protection/values.js'
import { TENANT } from '../helper.js'

// One destination's rules for one type, compiled against the type's schema.
const keys = new ProtectionKeys('k1', new Map([['k1', Buffer.alloc(32, 5)]]))
const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['call_id', 'caller', 'notes'],
  properties: {
    call_id: { type: 'string' },
    caller: {
      type: 'object',
      required: ['phone', 'name'],
      properties: { phone: { type: 'string', maxLength: 20 }, name: { type: 'string' }, 'a/b': { type: 'integer' } }
    },
    notes: { anyOf: [{ type: 'string' }, { type: 'null' }] },
    contact: {
      anyOf: [{ type: 'object', properties: { email: { type: 'string' } } }, { type: 'object', properties: { sms: { type: 'string' } } }]
    },
    tags: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' } } } }
  }
}
const type = { type: 'support.call', schema, keyFields: new Map([['call_id', 'routing key']]) }
const compile = (rules: ProtectRule[]) => compileProtection(rules, type, keys)
const event = { tenantId: TENANT, type: 'support.call' }

t.test('nested fields, escaped names and union variants; the data is copied, never changed', async t => {
  const protection = compile([
    { pointer: '/caller/phone', action: 'encrypt' },
    { pointer: '/caller/a~1b', action: 'hash' },
    { pointer: '/notes', action: 'drop' },
    { pointer: '/contact/sms', action: 'hash' }
  ])
  const caller = { phone: '+15551234567', name: 'Ada', 'a/b': 7 }
  const data = { call_id: 'c-1', caller, notes: 'n', contact: { sms: '+1555' }, tags: [] }
  const before = structuredClone(data)
  const out = protection.apply(data, event) as typeof data & { caller: Record<string, unknown> }
  t.same(data, before, 'the event\'s own data is not changed')
  t.equal(out.call_id, 'c-1')
  t.equal(out.caller.name, 'Ada')
  const place = { tenant: TENANT, type: 'support.call', pointer: '/caller/phone' }
  t.equal(decryptValue(keys, place, out.caller.phone as string), '+15551234567')
  t.match(out.caller['a/b'], /^[0-9a-f]{64}$/)
  t.notOk('notes' in out)
  t.match(out.contact.sms, /^[0-9a-f]{64}$/)
  t.equal(out.tags, data.tags, 'what no rule touches is shared, not copied')
  t.same(protection.counts, { drop: 1, hash: 2, encrypt: 1 })
  // What the destination's envelope schema says of its data.
  const s = protection.schema as typeof schema
  t.match(s.properties.caller.properties.phone, { type: 'string', pattern: '^evg:v1:' })
  t.notOk('notes' in s.properties, 'a dropped field is gone')
  t.same(s.required, ['call_id', 'caller'], 'and no longer required')
  t.match(s.properties.contact.anyOf[1], { properties: { sms: { type: 'string', pattern: '^[0-9a-f]{64}$' } } })
  t.equal(schema.properties.caller.properties.phone.maxLength, 20, 'the type\'s own schema is not changed')
  // Absent fields stay absent; another object shape is left alone.
  const partial = protection.apply({ call_id: 'c-2', caller: 'not an object' }, event)
  t.same(partial, { call_id: 'c-2', caller: 'not an object' })
  t.same(protection.apply({ call_id: 'c-3' }, event, false), { call_id: 'c-3' })
  t.same(protection.counts, { drop: 1, hash: 2, encrypt: 1 }, 'uncounted applications do not count')
})

t.test('a JSON object\'s own __proto__ key is protected as a field, never the prototype', async t => {
  const protection = compileProtection([{ pointer: '/__proto__', action: 'hash' }], {
    type: 'x', schema: { type: 'object', properties: { ['__proto__']: { type: 'string' } } }, keyFields: new Map()
  }, keys)
  const data = JSON.parse('{"__proto__": "secret"}') as Record<string, unknown>
  const out = protection.apply(data, event)
  t.equal(Object.getPrototypeOf(out), Object.prototype)
  t.match(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, /^[0-9a-f]{64}$/)
})

t.test('refused at start: not a field, an array item, a key field, overlaps, no keys, not a pointer', async t => {
  const cases: [ProtectRule[], RegExp][] = [
    [[{ pointer: '/caller/fax', action: 'hash' }], /is not a field of support\.call/],
    [[{ pointer: '/tags/0/label', action: 'hash' }], /is inside \/tags, which may be other than an object[^:]*: protect \/tags as a whole/],
    [[{ pointer: '/call_id', action: 'hash' }], /is the field the catalog makes the event's routing key of/],
    [[{ pointer: '/caller', action: 'encrypt' }, { pointer: '/caller/phone', action: 'drop' }], /is inside \/caller/],
    [[{ pointer: 'caller', action: 'drop' }], /must be a JSON Pointer/],
    [[{ pointer: '/caller/a~2b', action: 'drop' }], /has a ~ that is not ~0 or ~1/]
  ]
  for (const [rules, message] of cases) t.throws(() => compile(rules), message)
  // A field inside something that may be a string or an array would go out in clear as that.
  const loose = (contact: object) => ({
    type: 'support.call', keyFields: new Map(), schema: { type: 'object', properties: { contact } }
  })
  const phone = [{ pointer: '/contact/phone', action: 'hash' as const }]
  const object = { type: 'object', properties: { phone: { type: 'string' } } }
  for (const contact of [
    { anyOf: [{ type: 'string' }, object] },
    { type: ['object', 'string'], properties: { phone: { type: 'string' } } },
    { properties: { phone: { type: 'string' } } }
  ]) {
    const refused = /is inside \/contact, which may be other than an object/
    t.throws(() => compileProtection(phone, loose(contact), keys), refused, JSON.stringify(contact))
  }
  const objects = [{ anyOf: [object, { type: 'null' }] }, { type: ['object', 'null'], properties: { phone: {} } }, { allOf: [object] }]
  for (const contact of objects) {
    t.ok(compileProtection(phone, loose(contact), keys), JSON.stringify(contact))
  }
  t.throws(() => compileProtection([{ pointer: '/notes', action: 'encrypt' }], type, undefined), /encrypt needs PROTECTION_KEYS_FILE/)
  t.ok(compileProtection([{ pointer: '/notes', action: 'drop' }], type, undefined), 'drop needs no keys')
  t.same(parsePointer('/a~1b/c~0d'), ['a/b', 'c~d'])
  t.throws(() => parsePointer('/'), ProtectionError)
})
