import t from 'tap'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { encryptValue } from '../../src/protection/values.js'
import { createAjv } from '../../src/validation/index.js'
import { OTHER_TENANT, runTs, TENANT } from '../helper.js'
import { writeJson } from '../integration/cli-helper.js'

// npm run decrypt: what a consumer's operator runs to open a value the gateway encrypted.
const SECRET_1 = Buffer.alloc(32, 3).toString('base64')
const SECRET_2 = Buffer.alloc(32, 4).toString('base64')

t.test('decrypt opens one value, or every encrypted value of an event\'s data, by its pointer', async t => {
  const old = writeJson(t, 'old-keys.json', { active: 'k1', keys: [{ id: 'k1', secret: SECRET_1 }] })
  const rotated = writeJson(t, 'keys.json', { active: 'k2', keys: [{ id: 'k1', secret: SECRET_1 }, { id: 'k2', secret: '${K2_SECRET}' }] })
  const place = { tenant: TENANT, type: 'call.ended', pointer: '/transcript' }
  const byK1 = encryptValue(ProtectionKeys.load(old, createAjv(), {}), place, 'callback at 2pm')
  const env = { PROTECTION_KEYS_FILE: rotated, K2_SECRET: SECRET_2, LOG_LEVEL: 'silent' }
  const keys = ProtectionKeys.load(rotated, createAjv(), env)
  const byK2 = encryptValue(keys, { ...place, pointer: '/caller/phone' }, { number: '+15551234567' })

  const one = runTs('src/cli/decrypt.ts', ['--tenant', TENANT, '--type', 'call.ended', '--pointer', '/transcript', byK1], env)
  t.equal(await one.exit, 0, one.out.stderr)
  t.equal(one.out.stdout, '"callback at 2pm"\n', 'a value of a rotated-out key still opens')

  const data = JSON.stringify({ call_id: 'c-1', transcript: byK1, caller: { phone: byK2 }, outcome: 'completed' })
  const all = runTs('src/cli/decrypt.ts', ['--tenant', TENANT, '--type', 'call.ended'], env, data)
  t.equal(await all.exit, 0, all.out.stderr)
  const opened = { call_id: 'c-1', transcript: 'callback at 2pm', caller: { phone: { number: '+15551234567' } }, outcome: 'completed' }
  t.same(JSON.parse(all.out.stdout), opened)

  const moved = JSON.stringify({ transcript: byK1, notes: byK1 })
  const wrongField = runTs('src/cli/decrypt.ts', ['--tenant', TENANT, '--type', 'call.ended'], env, moved)
  t.equal(await wrongField.exit, 2, 'a value moved to another field does not open')
  t.match(wrongField.out.stderr, /decrypt: \/notes: does not open/)

  const other = runTs('src/cli/decrypt.ts', ['--tenant', OTHER_TENANT, '--type', 'call.ended', '--pointer', '/transcript', byK1], env)
  t.equal(await other.exit, 2)
  t.match(other.out.stderr, /does not open: another tenant, type or field, another key, or altered/)
  t.equal(other.out.stdout, '')

  const unlisted = runTs('src/cli/decrypt.ts', ['--tenant', TENANT, '--type', 'call.ended', '--pointer', '/caller/phone', byK2], {
    ...env, PROTECTION_KEYS_FILE: old
  })
  t.equal(await unlisted.exit, 2)
  t.match(unlisted.out.stderr, /key 'k2' is not in the keys file/)
})

t.test('decrypt: wrong arguments or keys file end with 1 and say why', async t => {
  const keysFile = writeJson(t, 'keys.json', { active: 'k1', keys: [{ id: 'k1', secret: SECRET_1 }] })
  const withKeys = { PROTECTION_KEYS_FILE: keysFile }
  const value = ['--tenant', TENANT, '--type', 'x', '--pointer', '/x', 'v']
  const cases: [string[], Record<string, string | undefined>, RegExp][] = [
    [['--type', 'call.ended', '--pointer', '/x', 'evg:v1:k1:AAAA'], withKeys, /--tenant and --type are required/],
    [['--tenant', TENANT, '--type', 'call.ended', 'evg:v1:k1:AAAA'], withKeys, /give one VALUE with its --pointer/],
    [value, { PROTECTION_KEYS_FILE: undefined }, /PROTECTION_KEYS_FILE is not set/],
    [['--tenant', TENANT, '--type', 'x', '--nope'], withKeys, /Unknown option '--nope'[\s\S]*usage: npm run decrypt/],
    [value, { PROTECTION_KEYS_FILE: '/nonexistent/keys.json' }, /PROTECTION_KEYS_FILE: cannot read/]
  ]
  for (const [args, env, message] of cases) {
    const run = runTs('src/cli/decrypt.ts', args, { LOG_LEVEL: 'silent', ...env })
    t.equal(await run.exit, 1, args.join(' '))
    t.match(run.out.stderr, message)
  }
  const notJson = runTs('src/cli/decrypt.ts', ['--tenant', TENANT, '--type', 'x'], { ...withKeys, LOG_LEVEL: 'silent' }, '{not json')
  t.equal(await notJson.exit, 1)
  t.match(notJson.out.stderr, /stdin is not JSON/)
  const notValue = runTs('src/cli/decrypt.ts', ['--tenant', TENANT, '--type', 'x', '--pointer', '/x', 'plain'], withKeys)
  t.equal(await notValue.exit, 2)
  t.match(notValue.out.stderr, /not an encrypted value/)
})
