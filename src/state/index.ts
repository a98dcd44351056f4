import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../storage/database.js'
import type { IdempotencyStore } from './idempotency.js'
import { LocalRateLimiter, type RateLimiter } from './rate-limiter.js'
import { RedisState } from './redis.js'
import { SqliteIdempotencyStore } from './sqlite.js'

/**
 * What gateways must agree on to keep their promises: idempotency keys and rate-limit buckets.
 * Embedded (SQLite and memory, one process) by default; Redis when STATE_URL names one, so that
 * every replica sees the same keys and buckets.
 */
export interface StateStore {
  readonly kind: 'sqlite' | 'redis'
  readonly idempotency: IdempotencyStore
  readonly rateLimiter: RateLimiter
  connect (): Promise<void>
  /** Why the store cannot be used now; undefined when it can. */
  down (): string | undefined
  close (): Promise<void>
}

export function openStateStore (
  config: { STATE_URL?: string | undefined, STATE_TIMEOUT_MS: number },
  db: Db,
  log: FastifyBaseLogger
): StateStore {
  const url = config.STATE_URL
  if (url !== undefined && url !== '') {
    const redis = new RedisState(url, { commandTimeoutMs: config.STATE_TIMEOUT_MS, log })
    return {
      kind: 'redis',
      idempotency: redis,
      rateLimiter: redis,
      connect: () => redis.connect(),
      down: () => redis.down,
      close: () => redis.close()
    }
  }
  const keys = new SqliteIdempotencyStore(db)
  const buckets = new LocalRateLimiter()
  return {
    kind: 'sqlite',
    idempotency: keys,
    rateLimiter: buckets,
    connect: () => keys.connect(),
    down: () => keys.down,
    close: async () => {
      buckets.close()
      await keys.close()
    }
  }
}
