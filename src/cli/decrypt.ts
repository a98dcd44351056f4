// npm run decrypt -- --tenant ID --type TYPE --pointer /field VALUE
// npm run decrypt -- --tenant ID --type TYPE < data.json
// Opens values a destination got encrypted (routes file `protect`, docs/protection.md) with the
// keys in PROTECTION_KEYS_FILE. With a VALUE (evg:v1:…) and its field's --pointer, prints the
// value as JSON. Without one, reads an event's data (JSON) from stdin and prints it with every
// encrypted value in it opened, each by its own pointer. Exit codes: 0 opened, 1 bad arguments
// or keys file, 2 a value does not open (another tenant, type or field, a key not listed, altered).
import { parseArgs } from 'node:util'
import { createAjv } from '../validation/index.js'
import { messageOf } from '../errors.js'
import { ProtectionKeys } from '../protection/keys.js'
import { decryptValue, DecryptError, ENCRYPTED_PREFIX } from '../protection/values.js'
import { pointerOf } from '../validation/pointer.js'
import { cliConfig, exitWith, isObject } from './common.js'

const usage = 'npm run decrypt -- --tenant ID --type TYPE (--pointer /field VALUE | < data.json)'
let parsed
try {
  parsed = parseArgs({
    options: { tenant: { type: 'string' }, type: { type: 'string' }, pointer: { type: 'string' } },
    allowPositionals: true
  })
} catch (err) {
  exitWith(1, `${messageOf(err)}\nusage: ${usage}`)
}
const { values, positionals } = parsed
const { tenant, type, pointer } = values
if (tenant === undefined || type === undefined) exitWith(1, `decrypt: --tenant and --type are required\nusage: ${usage}`)
if (positionals.length > 1 || (positionals.length === 1) !== (pointer !== undefined)) {
  exitWith(1, `decrypt: give one VALUE with its --pointer, or the data on stdin without either\nusage: ${usage}`)
}

const config = await cliConfig()
if (config.PROTECTION_KEYS_FILE === undefined) exitWith(1, 'decrypt: PROTECTION_KEYS_FILE is not set')
let keys: ProtectionKeys
try {
  keys = ProtectionKeys.load(config.PROTECTION_KEYS_FILE, createAjv(), process.env)
} catch (err) {
  exitWith(1, messageOf(err))
}

/** `value` with every encrypted string in it opened, each by its pointer under `at`. */
function openAll (value: unknown, at: string, place: { tenant: string, type: string }): unknown {
  if (typeof value === 'string' && value.startsWith(ENCRYPTED_PREFIX)) {
    try {
      return decryptValue(keys, { ...place, pointer: at }, value)
    } catch (err) {
      // Which field: a clear value may look like an encrypted one.
      throw err instanceof DecryptError ? new DecryptError(`${at}: ${err.message}`) : err
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => openAll(v, `${at}/${i}`, place))
  if (!isObject(value)) return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, openAll(v, `${at}${pointerOf([k])}`, place)]))
}

try {
  const [one] = positionals
  if (one !== undefined && pointer !== undefined) {
    console.log(JSON.stringify(decryptValue(keys, { tenant, type, pointer }, one)))
  } else {
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    let data: unknown
    try {
      data = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (err) {
      exitWith(1, `decrypt: stdin is not JSON: ${messageOf(err)}`)
    }
    console.log(JSON.stringify(openAll(data, '', { tenant, type }), null, 2))
  }
} catch (err) {
  if (!(err instanceof DecryptError)) throw err
  exitWith(2, `decrypt: ${err.message}`)
}
