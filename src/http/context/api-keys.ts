import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { Type, type Static } from 'typebox'
import type { Ajv } from 'ajv'
import { loadJsonFile } from '../../config/file.js'
import { GatewayError } from '../../errors.js'
import { HEADERS } from './headers.js'
import { patternMatcher } from '../../routing/patterns.js'
import { normalizeTenantId, type TenantIdFormat } from '../../config/tenant.js'

// API_KEYS_FILE holds sha256 digests of keys, never the keys, so the file is not itself a secret.
export const ApiKeysFileSchema = Type.Object({
  keys: Type.Array(Type.Object({
    name: Type.String({ minLength: 1, maxLength: 128, description: 'Who holds the key; shown in logs' }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Hex sha256 of the key' }),
    tenants: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Tenants it may publish for; "*" for any' }),
    eventTypes: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Types it may publish; "*" for any, "call.*" for a prefix'
    }),
    admin: Type.Optional(Type.Boolean({
      description: 'May use the admin API (/v1/admin: the outbox and its dead letters, of its tenants); default false'
    }))
  }, { additionalProperties: false }), { minItems: 1 })
}, { additionalProperties: false })

export type ApiKeysFile = Static<typeof ApiKeysFileSchema>

export interface ApiKey {
  name: string
  allowsTenant (tenant: string): boolean
  allowsType (type: string): boolean
  /** Its tenant patterns, normalised as requests spell tenants (`*`, `abc*`, exact ids). */
  tenants: readonly string[]
  /** May use /v1/admin. */
  admin: boolean
}

export class ApiKeys {
  readonly #byDigest = new Map<string, ApiKey>()

  constructor (file: ApiKeysFile, format: TenantIdFormat) {
    for (const k of file.keys) {
      // Tenants as requests spell them after normalisation: lower case under TENANT_ID_FORMAT=uuid, as written under slug.
      const tenants = k.tenants.map(tenant => normalizeTenantId(tenant, format))
      this.#byDigest.set(k.sha256, {
        name: k.name,
        allowsTenant: patternMatcher(tenants),
        tenants,
        allowsType: patternMatcher(k.eventTypes),
        admin: k.admin === true
      })
    }
  }

  static load (path: string, ajv: Ajv, format: TenantIdFormat): ApiKeys {
    return new ApiKeys(loadJsonFile('API_KEYS_FILE', path, ApiKeysFileSchema, ajv), format)
  }

  /** The key presented as `Authorization: Bearer <key>`; EVG_UNAUTHORIZED when absent or unknown. */
  authenticate (headers: IncomingHttpHeaders): ApiKey {
    const header = headers[HEADERS.authorization]
    const presented = typeof header === 'string' ? /^Bearer\s+(\S{1,512})$/i.exec(header)?.[1] : undefined
    if (presented === undefined) throw new GatewayError('EVG_UNAUTHORIZED', 'send an API key as Authorization: Bearer <key>')
    const key = this.#byDigest.get(createHash('sha256').update(presented).digest('hex'))
    if (key === undefined) throw new GatewayError('EVG_UNAUTHORIZED', 'the API key is not known')
    return key
  }
}

export function forbidden (what: string): GatewayError {
  return new GatewayError('EVG_FORBIDDEN', `this API key may not publish ${what}`)
}
