import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import canonicalizeModule from 'canonicalize'
import type { ProtectionKeys } from './keys.js'

// The protected values' format (docs/protection.md), which consumers reproduce:
// - hash: HMAC-SHA256 of the value's RFC 8785 canonical JSON with the tenant's hash key, lowercase hex;
// - encrypt: AES-256-GCM of the canonical JSON with the tenant's encryption key, a fresh 96-bit IV,
//   additional data `<tenant>\n<event type>\n<pointer>`, a 128-bit tag, written as
//   `evg:v1:<key id>:<base64url, no padding, of iv ‖ ciphertext ‖ tag>`.

// A CommonJS module whose types declare an ES default export: Node's default import is the function itself.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined

export const ENCRYPTED_PREFIX = 'evg:v1:'
const IV_BYTES = 12
const TAG_BYTES = 16
/** An encrypted value, as the envelope's schema describes it. */
export const ENCRYPTED_PATTERN = '^evg:v1:[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_-]{38,}$'
export const HASHED_PATTERN = '^[0-9a-f]{64}$'

/** RFC 8785: the text a value is hashed or encrypted as (a string as its JSON text, quotes included). */
export function canonicalJson (value: unknown): string {
  const text = canonicalize(value)
  // JSON parsed from a request has no undefined, NaN or Infinity: this is a bug's guard.
  if (text === undefined) throw new TypeError('the value has no JSON form')
  return text
}

/** Where an encrypted value belongs: the tenant, the event type and the data field's pointer. */
export interface ValuePlace {
  tenant: string
  type: string
  pointer: string
}

const additionalData = ({ tenant, type, pointer }: ValuePlace): Buffer => Buffer.from(`${tenant}\n${type}\n${pointer}`, 'utf8')

export function hashValue (keys: ProtectionKeys, tenant: string, value: unknown): string {
  const key = keys.key(tenant, 'hash')
  if (key === undefined) throw new Error('the active key is not listed')
  return createHmac('sha256', key).update(canonicalJson(value), 'utf8').digest('hex')
}

export function encryptValue (keys: ProtectionKeys, place: ValuePlace, value: unknown): string {
  const key = keys.key(place.tenant, 'encrypt')
  if (key === undefined) throw new Error('the active key is not listed')
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(additionalData(place))
  const sealed = Buffer.concat([iv, cipher.update(canonicalJson(value), 'utf8'), cipher.final(), cipher.getAuthTag()])
  return `${ENCRYPTED_PREFIX}${keys.active}:${sealed.toString('base64url')}`
}

export class DecryptError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'DecryptError'
  }
}

/** The value an `evg:v1:` string holds; a DecryptError when it is not one, its key is not listed, or it does not open here. */
export function decryptValue (keys: ProtectionKeys, place: ValuePlace, text: string): unknown {
  const match = /^evg:v1:([A-Za-z0-9_.-]{1,64}):([A-Za-z0-9_-]+)$/.exec(text)
  if (match === null) throw new DecryptError('not an encrypted value (evg:v1:<key id>:<base64url>)')
  const [, id = '', payload = ''] = match
  const key = keys.key(place.tenant, 'encrypt', id)
  if (key === undefined) throw new DecryptError(`key '${id}' is not in the keys file`)
  const sealed = Buffer.from(payload, 'base64url')
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new DecryptError('too short to be an encrypted value')
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
  decipher.setAAD(additionalData(place))
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
  let plain: string
  try {
    plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString('utf8')
  } catch {
    throw new DecryptError('does not open: another tenant, type or field, another key, or altered')
  }
  return JSON.parse(plain)
}
