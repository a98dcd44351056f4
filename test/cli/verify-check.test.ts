import t from 'tap'
import { checkEnvelope } from '../../src/cli/verify-check.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { createEvent } from '../../src/envelopes/event.js'
import { compileWireFormat, protectedEvent } from '../../src/envelopes/index.js'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { compileProtection } from '../../src/protection/rules.js'
import { exampleOf, TENANT } from '../helper.js'

// What `npm run verify` says of a destination's envelope when the destination gets fields
// protected: an encrypted value differs at every encryption, so its shape is what is checked.
const entry = BUILTIN_ENTRIES.find(e => e.type === 'call.ended')
if (entry === undefined) throw new Error('call.ended missing')
const keys = new ProtectionKeys('k1', new Map([['k1', Buffer.alloc(32, 6)]]))
const protection = compileProtection([{ pointer: '/transcript', action: 'encrypt' }, { pointer: '/outcome', action: 'hash' }], {
  type: 'call.ended', schema: entry.schema, keyFields: new Map()
}, keys)
const format = {
  ...compileWireFormat({ envelope: 'cloudevents' }, 'local', { type: 'call.ended', schema: protection.schema, source: 's', module: 's' }),
  protection
}
const sent = createEvent(entry, exampleOf('call.ended'), { tenantId: TENANT, correlationId: 'c-1' })
const received = (envelope: unknown) => ({ envelope, problems: [], remove: async () => 'deleted' })

t.test('the envelope as the destination sent it passes, its encrypted values compared by shape', async t => {
  const envelope = JSON.parse(format.encode(protectedEvent(format, sent)))
  t.match(envelope.data.transcript, /^evg:v1:k1:/)
  t.same(checkEnvelope(format, received(envelope), sent).problems, [])
})

t.test('a value that should be protected and came in clear, or a wrong hash, is a problem (not quoted)', async t => {
  const envelope = JSON.parse(format.encode(protectedEvent(format, sent)))
  const clear = { ...envelope, data: { ...envelope.data, transcript: sent.data.transcript } }
  t.same(checkEnvelope(format, received(clear), sent).problems, ['data is not what was sent'])
  const wrongHash = { ...envelope, data: { ...envelope.data, outcome: 'f'.repeat(64) } }
  t.same(checkEnvelope(format, received(wrongHash), sent).problems, ['data is not what was sent'])
})
