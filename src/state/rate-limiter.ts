import type { Ajv } from 'ajv'
import { Type, type Static } from 'typebox'
import { ConfigError } from '../errors.js'
import { MIN_RATE } from '../config/index.js'
import { isValidTenantId, normalizeTenantId, type TenantIdFormat } from '../config/tenant.js'
import { loadJsonFile } from '../config/file.js'

/** A tenant's limit: events per second on average, and how many may come at once. */
export interface RateLimit {
  perSecond: number
  burst: number
}

export interface Taken {
  allowed: boolean
  /** When refused: how long until the events would be allowed. */
  retryInMs: number
  /** How long until the tenant's bucket is full again. */
  fullInMs: number
}

/** Takes `events` from a tenant's bucket, or refuses them all. */
export interface RateLimiter {
  take (tenant: string, events: number, limit: RateLimit): Promise<Taken>
}

/** Buckets kept in memory at most: about 10 MB. Tenant ids are anyone's to make up when auth is off. */
const MAX_TENANTS = 100_000

/**
 * Buckets in this process's memory (the embedded state store): the generic cell rate algorithm,
 * one timestamp per tenant, swept once they are full again.
 */
export class LocalRateLimiter implements RateLimiter {
  readonly #tat = new Map<string, number>()
  readonly #timer = setInterval(() => this.#sweep(), 10_000).unref()

  async take (tenant: string, events: number, limit: RateLimit): Promise<Taken> {
    const now = performance.timeOrigin + performance.now()
    const interval = 1000 / limit.perSecond
    const tat = Math.max(this.#tat.get(tenant) ?? 0, now)
    const after = tat + events * interval
    // More events than the burst are taken from a full bucket, which then owes them: the rate
    // holds over time whatever the size of a batch.
    const allowAt = Math.min(after - limit.burst * interval, tat)
    if (allowAt > now) return { allowed: false, retryInMs: allowAt - now, fullInMs: tat - now }
    // Most recently used last: past MAX_TENANTS the least recently used bucket goes first.
    this.#tat.delete(tenant)
    this.#tat.set(tenant, after)
    if (this.#tat.size > MAX_TENANTS) this.#evict()
    return { allowed: true, retryInMs: 0, fullInMs: after - now }
  }

  #sweep (): void {
    const now = performance.timeOrigin + performance.now()
    for (const [tenant, tat] of this.#tat) if (tat < now) this.#tat.delete(tenant)
  }

  /** Full buckets go first; then, past the bound still, the least recently used (they start full again). */
  #evict (): void {
    this.#sweep()
    for (const tenant of this.#tat.keys()) {
      if (this.#tat.size <= MAX_TENANTS * 0.9) break
      this.#tat.delete(tenant)
    }
  }

  close (): void {
    clearInterval(this.#timer)
  }
}

export const RateLimitsFileSchema = Type.Object({
  tenants: Type.Record(Type.String({ minLength: 1, maxLength: 128 }), Type.Object({
    perSecond: Type.Number({ minimum: 0, maximum: 1_000_000, description: 'Events per second; 0 for no limit' }),
    burst: Type.Optional(Type.Integer({
      minimum: 1,
      maximum: 10_000_000,
      description: 'Events at once (default: one second\'s worth, at least 1)'
    }))
  }, { additionalProperties: false }), { description: 'Limits per tenant id, overriding RATE_LIMIT_PER_TENANT' })
}, { additionalProperties: false })

export type RateLimitsFile = Static<typeof RateLimitsFileSchema>

const limitOf = (perSecond: number, burst: number | undefined): RateLimit | undefined =>
  perSecond === 0 ? undefined : { perSecond, burst: burst ?? Math.max(1, Math.ceil(perSecond)) }

/** The configuration TenantLimits.load reads. */
interface LimitSettings {
  RATE_LIMIT_PER_TENANT: number
  RATE_LIMIT_BURST: number
  RATE_LIMITS_FILE?: string | undefined
  TENANT_ID_FORMAT: TenantIdFormat
}

/** Each tenant's limit: its override from RATE_LIMITS_FILE, else the default; undefined for none. */
export class TenantLimits {
  readonly #default: RateLimit | undefined
  readonly #overrides = new Map<string, RateLimit | undefined>()

  constructor (perSecond: number, burst: number, file?: RateLimitsFile, format: TenantIdFormat = 'uuid') {
    this.#default = limitOf(perSecond, burst === 0 ? undefined : burst)
    for (const [tenant, limit] of Object.entries(file?.tenants ?? {})) {
      this.#overrides.set(normalizeTenantId(tenant, format), limitOf(limit.perSecond, limit.burst))
    }
  }

  static load (config: LimitSettings, ajv: Ajv): TenantLimits {
    const path = config.RATE_LIMITS_FILE
    if (path === undefined) return new TenantLimits(config.RATE_LIMIT_PER_TENANT, config.RATE_LIMIT_BURST)
    const file = loadJsonFile('RATE_LIMITS_FILE', path, RateLimitsFileSchema, ajv)
    const format = config.TENANT_ID_FORMAT
    // A name no request can have, or a rate too small for any header to say, is a mistake.
    const wrong: string[] = []
    for (const [tenant, limit] of Object.entries(file.tenants)) {
      const at = `/tenants/${tenant.slice(0, 64)}`
      if (!isValidTenantId(tenant, format)) wrong.push(`${at} is not a tenant id (TENANT_ID_FORMAT=${format})`)
      if (limit.perSecond > 0 && limit.perSecond < MIN_RATE) wrong.push(`${at}/perSecond must be 0 (no limit) or at least ${MIN_RATE}`)
    }
    if (wrong.length > 0) throw new ConfigError(`RATE_LIMITS_FILE: ${path} is not valid: ${wrong.join('; ')}`)
    return new TenantLimits(config.RATE_LIMIT_PER_TENANT, config.RATE_LIMIT_BURST, file, config.TENANT_ID_FORMAT)
  }

  /** Whether any tenant is limited at all (else the limiter is not installed). */
  get any (): boolean {
    return this.#default !== undefined || [...this.#overrides.values()].some(l => l !== undefined)
  }

  of (tenant: string): RateLimit | undefined {
    return this.#overrides.has(tenant) ? this.#overrides.get(tenant) : this.#default
  }
}
