import { createCipheriv, createHmac, hkdfSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError } from '../../src/errors.js'
import { ProtectionKeys } from '../../src/protection/keys.js'
import { canonicalJson, decryptValue, DecryptError, encryptValue, hashValue } from '../../src/protection/values.js'
import { createAjv } from '../../src/validation/index.js'
import { dataDir, OTHER_TENANT, TENANT } from '../helper.js'

const SECRET_1 = Buffer.alloc(32, 1).toString('base64')
const SECRET_2 = Buffer.alloc(32, 2).toString('base64')

function keysOf (file: unknown, env: Record<string, string> = {}, dir = '/tmp'): ProtectionKeys {
  const path = join(dir, `keys-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(path, JSON.stringify(file))
  return ProtectionKeys.load(path, createAjv(), env)
}

const place = { tenant: TENANT, type: 'call.ended', pointer: '/transcript' }

t.test('RFC 8785: keys sorted by UTF-16 code units, numbers in their shortest form, strings as JSON text', async t => {
  t.equal(canonicalJson({ b: 1, a: [1e21, 0.1, -0, 'x'], '\u20ac': true, '\r': null }), '{"\\r":null,"a":[1e+21,0.1,0,"x"],"b":1,"€":true}')
  t.equal(canonicalJson('Hello'), '"Hello"', 'a string hashes with its quotes')
})

t.test('hash: HMAC-SHA256 of the canonical JSON with the tenant\'s key (HKDF, salt the tenant, info evg:hash:v1)', async t => {
  const keys = keysOf({ active: 'k1', keys: [{ id: 'k1', secret: SECRET_1 }] }, {}, dataDir(t))
  const value = { number: '+15551234567', kind: 'mobile' }
  const same = hashValue(keys, TENANT, { kind: 'mobile', number: '+15551234567' })
  t.equal(hashValue(keys, TENANT, value), same, 'equal values hash equal within a tenant, whatever the key order')
  t.not(hashValue(keys, OTHER_TENANT, value), same, 'another tenant gets another hash')
  t.match(same, /^[0-9a-f]{64}$/)
  // What a consumer computes from the documented constants.
  const key = Buffer.from(hkdfSync('sha256', Buffer.alloc(32, 1), Buffer.from(TENANT), 'evg:hash:v1', 32))
  t.equal(same, createHmac('sha256', key).update('{"kind":"mobile","number":"+15551234567"}').digest('hex'))
})

t.test('encrypt: a fresh IV each time; it opens for its tenant, type and field only; a rotated key still opens old values', async t => {
  const dir = dataDir(t)
  const k1 = keysOf({ active: 'k1', keys: [{ id: 'k1', secret: SECRET_1 }] }, {}, dir)
  const a = encryptValue(k1, place, 'Customer wants a callback tomorrow at 2pm.')
  const b = encryptValue(k1, place, 'Customer wants a callback tomorrow at 2pm.')
  t.match(a, /^evg:v1:k1:[A-Za-z0-9_-]+$/)
  t.not(a, b, 'a fresh IV per value')
  t.equal(decryptValue(k1, place, a), 'Customer wants a callback tomorrow at 2pm.')
  t.same(decryptValue(k1, place, encryptValue(k1, place, { n: [1, 2] })), { n: [1, 2] }, 'any JSON value')
  t.throws(() => decryptValue(k1, { ...place, tenant: OTHER_TENANT }, a), DecryptError, 'not with another tenant\'s key')
  t.throws(() => decryptValue(k1, { ...place, pointer: '/other' }, a), DecryptError, 'not as another field')
  t.throws(() => decryptValue(k1, { ...place, type: 'call.started' }, a), DecryptError, 'not as another type')
  const raw = Buffer.from(a.split(':')[3] as string, 'base64url')
  raw[raw.length - 1] = (raw[raw.length - 1] as number) ^ 1
  t.throws(() => decryptValue(k1, place, `evg:v1:k1:${raw.toString('base64url')}`), DecryptError, 'not with its tag altered')
  // Rotation: k2 becomes active, k1 stays listed.
  const rotated = keysOf({ active: 'k2', keys: [{ id: 'k1', secret: SECRET_1 }, { id: 'k2', secret: '${K2}' }] }, { K2: SECRET_2 }, dir)
  t.equal(decryptValue(rotated, place, a), 'Customer wants a callback tomorrow at 2pm.', 'an old value still opens')
  const c = encryptValue(rotated, place, 'new')
  t.match(c, /^evg:v1:k2:/, 'new values use the active key')
  t.throws(() => decryptValue(k1, place, c), /key 'k2' is not in the keys file/)
  // What a consumer does with the documented format.
  const key = Buffer.from(hkdfSync('sha256', Buffer.alloc(32, 1), Buffer.from(TENANT), 'evg:encrypt:v1', 32))
  const iv = Buffer.alloc(12, 7)
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(`${TENANT}\ncall.ended\n/transcript`))
  const sealed = Buffer.concat([iv, cipher.update('"by hand"'), cipher.final(), cipher.getAuthTag()])
  t.equal(decryptValue(k1, place, `evg:v1:k1:${sealed.toString('base64url')}`), 'by hand', 'a value made by the documented recipe opens')
})

t.test('a wrong keys file stops the start, naming the file and the field, never a secret', async t => {
  const dir = dataDir(t)
  const cases: [unknown, Record<string, string>, RegExp][] = [
    [{ active: 'k1', keys: [{ id: 'k1', secret: 'c2hvcnQ=' }] }, {}, /keys\.0\.secret: must be the base64 of 32 random bytes/],
    [{ active: 'k9', keys: [{ id: 'k1', secret: SECRET_1 }] }, {}, /active: 'k9' is not the id of a listed key/],
    [{ active: 'k1', keys: [{ id: 'k1', secret: '${MISSING_KEY}' }] }, {}, /keys\.0\.secret: \$\{MISSING_KEY\} is not set/],
    [{ active: 'k1', keys: [{ id: 'k1', secret: SECRET_1 }, { id: 'k1', secret: SECRET_2 }] }, {}, /keys\.1\.id: 'k1' is listed twice/],
    [{ active: 'k1', keys: [] }, {}, /keys: must NOT have fewer than 1 items/],
    [{ active: 'k1', keys: [{ id: 'k1', secret: SECRET_1, extra: 1 }] }, {}, /keys\.0/]
  ]
  for (const [file, env, message] of cases) {
    const error = t.throws(() => keysOf(file, env, dir), ConfigError) as Error
    t.match(error.message, /^PROTECTION_KEYS_FILE: \S+ is not valid: /)
    t.match(error.message, message)
    t.notMatch(error.message, SECRET_1)
    t.notMatch(error.message, SECRET_2)
  }
  t.throws(() => ProtectionKeys.load(join(dir, 'absent.json'), createAjv(), {}), /PROTECTION_KEYS_FILE: cannot read .*absent\.json: ENOENT/)
  // A syntax error says where, never the text around it: the file holds secrets.
  const broken = join(dir, 'broken.json')
  writeFileSync(broken, `{\n  "active": "k1",\n  "keys": [{ "id": "k1", "secret": ${SECRET_1} }]\n}`)
  const error = t.throws(() => ProtectionKeys.load(broken, createAjv(), {}), ConfigError) as Error
  t.match(error.message, /^PROTECTION_KEYS_FILE: \S+broken\.json is not valid JSON( at line 3, column \d+)?$/)
  t.notMatch(error.message, SECRET_1.slice(0, 8))
  const keys = keysOf({ active: 'k1', keys: [{ id: 'k1', secret: SECRET_1 }] }, {}, dir)
  t.notMatch(JSON.stringify(keys), SECRET_1, 'serialised, the keys show their ids only')
})
