import { hkdfSync } from 'node:crypto'
import type { Ajv } from 'ajv'
import { Type, type Static } from 'typebox'
import { readJsonFile } from '../config/file.js'
import { expandReferences } from '../config/references.js'
import { ConfigError, messageOf } from '../errors.js'
import { toFieldErrors } from '../validation/index.js'
import { dottedPath } from '../validation/pointer.js'

// PROTECTION_KEYS_FILE: the secrets protected fields are hashed and encrypted with. Each tenant's
// keys are derived from a secret (HKDF-SHA256, salt the tenant id, info per purpose), so one
// tenant's key never opens another tenant's values. The constants are part of the format:
// consumers reproduce them (docs/protection.md).

export const KEY_ID_PATTERN = '^[A-Za-z0-9_.-]{1,64}$'

export const ProtectionKeysFileSchema = Type.Object({
  active: Type.String({ pattern: KEY_ID_PATTERN, description: 'The id of the key new values are hashed and encrypted with' }),
  keys: Type.Array(Type.Object({
    id: Type.String({ pattern: KEY_ID_PATTERN, description: 'Written into every encrypted value (evg:v1:<id>:…)' }),
    secret: Type.String({ minLength: 1, maxLength: 4096, description: 'base64 of 32 random bytes, or a ${ENV} reference to it' })
  }, { additionalProperties: false }), { minItems: 1, maxItems: 64 })
}, { additionalProperties: false })

export type ProtectionKeysFile = Static<typeof ProtectionKeysFileSchema>

/** What a derived key is for: the HKDF `info`. `fingerprint` is the gateway's own (idempotency records). */
export type Purpose = 'hash' | 'encrypt' | 'fingerprint'
export const HKDF_INFO: Record<Purpose, string> = { hash: 'evg:hash:v1', encrypt: 'evg:encrypt:v1', fingerprint: 'evg:fingerprint:v1' }
const SECRET_BYTES = 32

/** HKDF-SHA256 of a secret for one tenant and purpose: 32 bytes. */
export function deriveKey (secret: Buffer, tenant: string, purpose: Purpose): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.from(tenant, 'utf8'), HKDF_INFO[purpose], SECRET_BYTES))
}

// Derived keys are kept per key id, tenant and purpose; beyond this many the oldest go (a
// derivation costs a few microseconds, a tenant's events reuse theirs).
const CACHED_KEYS = 10_000

/** The secrets, by id; derived keys on demand, cached. Never logged: no toJSON shows a secret. */
export class ProtectionKeys {
  readonly active: string
  /**
   * The first key listed: idempotency fingerprints are keyed with it, so that they stay the same
   * across a rotation (a new key is added and made active, the old one stays listed a while).
   */
  readonly first: string
  readonly #secrets: ReadonlyMap<string, Buffer>
  readonly #derived = new Map<string, Buffer>()

  constructor (active: string, secrets: ReadonlyMap<string, Buffer>) {
    if (!secrets.has(active)) throw new Error(`the active key '${active}' is not listed`)
    this.active = active
    this.first = secrets.keys().next().value as string
    this.#secrets = secrets
  }

  has (id: string): boolean {
    return this.#secrets.has(id)
  }

  /** The tenant's key for `purpose` from the secret `id` (the active one unless named); undefined when `id` is not listed. */
  key (tenant: string, purpose: Purpose, id = this.active): Buffer | undefined {
    const name = `${id}\0${purpose}\0${tenant}`
    let key = this.#derived.get(name)
    if (key !== undefined) return key
    const secret = this.#secrets.get(id)
    if (secret === undefined) return undefined
    key = deriveKey(secret, tenant, purpose)
    if (this.#derived.size >= CACHED_KEYS) this.#derived.delete(this.#derived.keys().next().value as string)
    this.#derived.set(name, key)
    return key
  }

  toJSON (): object {
    return { active: this.active, keys: [...this.#secrets.keys()] }
  }

  /**
   * Reads and checks PROTECTION_KEYS_FILE: every problem at once, each naming the file and the field,
   * never a secret's value.
   */
  static load (path: string, ajv: Ajv, env: Record<string, string | undefined>): ProtectionKeys {
    const fail = (problems: string[]): never => {
      throw new ConfigError(`PROTECTION_KEYS_FILE: ${path} is not valid: ${problems.join('; ')}`)
    }
    const file = readJsonFile('PROTECTION_KEYS_FILE', path, true)
    const check = ajv.compile<ProtectionKeysFile>(ProtectionKeysFileSchema)
    if (!check(file)) fail(toFieldErrors(check.errors).map(e => `${dottedPath(e.path) || '(root)'}: ${e.message}`))
    const valid = file as ProtectionKeysFile
    const problems: string[] = []
    const secrets = new Map<string, Buffer>()
    valid.keys.forEach((k, i) => {
      const where = `keys.${i}.secret`
      if (secrets.has(k.id)) problems.push(`keys.${i}.id: '${k.id}' is listed twice`)
      let text: string
      try {
        text = expandReferences(k.secret, env, where)
      } catch (err) {
        problems.push(messageOf(err))
        return
      }
      const secret = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined
      if (secret?.length !== SECRET_BYTES || secret.toString('base64').replace(/=+$/, '') !== text.replace(/=+$/, '')) {
        problems.push(`${where}: must be the base64 of ${SECRET_BYTES} random bytes (openssl rand -base64 ${SECRET_BYTES})`)
        return
      }
      secrets.set(k.id, secret)
    })
    if (!valid.keys.some(k => k.id === valid.active)) problems.push(`active: '${valid.active}' is not the id of a listed key`)
    if (problems.length > 0) fail(problems)
    return new ProtectionKeys(valid.active, secrets)
  }
}
