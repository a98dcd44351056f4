import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import {
  IDEMPOTENCY_TTL_MS,
  StateUnavailableError,
  type IdempotencyStore,
  type KeyRef,
  type PartialDelivery,
  type Reservation,
  type StoredAnswer
} from './idempotency.js'
import type { FastifyBaseLogger } from 'fastify'
import { messageOf } from '../errors.js'
import { safeUrl } from '../observability/safe-url.js'
import { Gather } from './gather.js'
import type { RateLimiter, RateLimit, Taken } from './rate-limiter.js'

// A key is a hash: s (pending | done | partial), p (fingerprint), t (the holder's token),
// u (when the holder's lease ends, ms on the Redis clock), b (the answer, or the partial event).
// Every step is one script, so no two replicas can both see a key free. A script takes the keys
// of one tenant asked for in the same tick (one slot under Redis Cluster): one command, one
// write and one reply for all of them. A key whose value is not a hash answers 'error' alone.
// ARGV per key: fingerprint, token, lease ms. Answers per key: state, value ('' when none).
const RESERVE = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local print, token, lease = ARGV[3 * i - 2], ARGV[3 * i - 1], tonumber(ARGV[3 * i])
  local state, value = 'reserved', ''
  local r = redis.pcall('HMGET', key, 's', 'p', 'u', 'b')
  if r.err then
    state, value = 'error', r.err
  elseif not r[1] then
    redis.call('HSET', key, 's', 'pending', 'p', print, 't', token, 'u', ms + lease)
    redis.call('PEXPIRE', key, lease)
  elseif r[2] ~= print then
    state = 'conflict'
  elseif r[1] == 'done' then
    state, value = 'done', r[4]
  elseif r[1] == 'pending' and tonumber(r[3]) > ms then
    state, value = 'busy', tostring(tonumber(r[3]) - ms)
  else
    redis.call('HSET', key, 's', 'pending', 't', token, 'u', ms + lease)
    if redis.call('PTTL', key) < lease then redis.call('PEXPIRE', key, lease) end
    if r[4] then state, value = 'partial', r[4] end
  end
  out[2 * i - 1], out[2 * i] = state, value
end
return out
`

// ARGV per key: token, what (done | partial | release), body, ttl ms. Only the holder may finish.
// Answers per key: 1 when it did, 0 when the key was not the holder's, the error for a key whose
// value is not a hash.
const FINISH = `
local out = {}
for i, key in ipairs(KEYS) do
  local token, what, body, ttl = ARGV[4 * i - 3], ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i]
  local holder = redis.pcall('HGET', key, 't')
  if type(holder) == 'table' and holder.err then
    out[i] = holder.err
  elseif holder ~= token then
    out[i] = 0
  elseif what == 'release' then
    if redis.call('HEXISTS', key, 'b') == 1 then
      redis.call('HSET', key, 's', 'partial')
      redis.call('HDEL', key, 't', 'u')
    else
      redis.call('DEL', key)
    end
    out[i] = 1
  else
    redis.call('HSET', key, 's', what, 'b', body)
    redis.call('HDEL', key, 't', 'u')
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  end
end
return out
`

// Generic cell rate algorithm (a token bucket kept as one timestamp), as LocalRateLimiter:
// ARGV = ms per event, burst, events. The bucket's theoretical arrival time is on the Redis clock,
// shared by replicas. More events than the burst are taken from a full bucket, which then owes them.
const TAKE = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + tonumber(now[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < ms then tat = ms end
local after = tat + tonumber(ARGV[3]) * interval
local allowAt = math.min(after - burst * interval, tat)
if allowAt > ms then return {0, string.format('%.3f', allowAt - ms), string.format('%.3f', tat - ms)} end
redis.call('SET', KEYS[1], string.format('%.3f', after), 'PX', math.ceil(after - ms) + 1)
return {1, '0', string.format('%.3f', after - ms)}
`

interface Scripts {
  evgReserve (keys: number, ...keysThenArgs: (string | number)[]): Promise<string[]>
  evgFinish (keys: number, ...keysThenArgs: (string | number)[]): Promise<(number | string)[]>
  evgTake (key: string, intervalMs: number, burst: number, events: number): Promise<[number, string, string]>
}

// Redis Cluster keeps a tenant's keys in one slot ({tenant}); one Redis needs nothing more.
const idemKey = (ref: KeyRef) => `evg:idem:{${ref.tenant}}:${ref.key}`

/** A key's body, as complete or keepPartial wrote it (JSON.stringify): ours, so not checked again. */
function stored<T> (body: string | undefined): T {
  return JSON.parse(String(body)) as T
}

/**
 * The state a fleet of gateways shares, in Redis (STATE_URL=redis://…): idempotency keys and
 * rate-limit buckets. Commands fail at once while Redis is unreachable (no offline queue), so a
 * keyed request is refused with 503 instead of waiting or publishing twice.
 */
export class RedisState implements IdempotencyStore, RateLimiter {
  readonly #redis: Redis & Scripts
  readonly #log: FastifyBaseLogger | undefined
  readonly #reserve: Gather<string>
  readonly #finish: Gather<number | string>
  #lastErrorLog = 0

  constructor (url: string, options: { commandTimeoutMs: number, log?: FastifyBaseLogger }) {
    this.#log = options.log
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Off: at one or two commands per request, auto-pipelining's bookkeeping costs more CPU than
      // it saves (bench: keyed-redis).
      enableAutoPipelining: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: options.commandTimeoutMs,
      retryStrategy: times => Math.min(100 * times, 2000)
    })
    redis.defineCommand('evgReserve', { lua: RESERVE })
    redis.defineCommand('evgFinish', { lua: FINISH })
    redis.defineCommand('evgTake', { numberOfKeys: 1, lua: TAKE })
    // Errors are answered per command (503 for keyed requests) and the client keeps reconnecting;
    // the log says why, at most every 30 s. ioredis's messages carry no credentials.
    redis.on('error', (err: Error) => {
      if (Date.now() - this.#lastErrorLog < 30_000) return
      this.#lastErrorLog = Date.now()
      this.#log?.warn({ err: err.message, store: 'redis', url: safeUrl(url) }, 'state store: redis error')
    })
    redis.on('ready', () => this.#log?.info({ store: 'redis', url: safeUrl(url) }, 'state store: redis connected'))
    // defineCommand adds the scripts' methods at run time, where TypeScript cannot see them.
    this.#redis = redis as Redis & Scripts
    this.#reserve = new Gather((keysThenArgs, keys) => this.#redis.evgReserve(keys, ...keysThenArgs), 2)
    // Nobody's answer waits for a finish (Intake answers once the event is published): finishes
    // gather for 10 ms, as the embedded store's writes do, so that one command carries many.
    this.#finish = new Gather((keysThenArgs, keys) => this.#redis.evgFinish(keys, ...keysThenArgs), 1, 10)
  }

  /** Connects; a Redis that is down at start-up is not fatal (keyed requests get 503 until it is up). */
  async connect (): Promise<void> {
    try {
      await this.#redis.connect()
    } catch {
      // ioredis keeps retrying in the background
    }
  }

  get down (): string | undefined {
    return this.#redis.status === 'ready' ? undefined : `redis is ${this.#redis.status}`
  }

  async #call<T> (what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (err) {
      throw new StateUnavailableError(`redis: ${what} failed: ${messageOf(err)}`, { cause: err })
    }
  }

  async reserve (ref: KeyRef, leaseMs: number): Promise<Reservation> {
    const token = randomUUID()
    let state, value
    try {
      [state, value] = await this.#call('reserve', () => this.#reserve.call(ref.tenant, idemKey(ref), [ref.print, token, leaseMs]))
    } catch (err) {
      // A slow Redis may have run the script after the client gave up: give back what it may
      // hold under this token (the release runs after it, on the same connection), so that a
      // retry does not find the key held by no one until the lease ends.
      this.#finish.call(ref.tenant, idemKey(ref), [token, 'release', '', 0]).catch(() => undefined)
      throw err
    }
    switch (state) {
      case 'reserved': return { state: 'reserved', token }
      case 'partial': return { state: 'reserved', token, partial: stored<PartialDelivery>(value) }
      case 'done': return { state: 'done', answer: stored<StoredAnswer>(value) }
      case 'busy': return { state: 'busy', retryInMs: Number(value) }
      case 'conflict': return { state: 'conflict' }
      default: throw new StateUnavailableError(`redis: reserve failed: ${value}`)
    }
  }

  async complete (ref: KeyRef, token: string, answer: StoredAnswer): Promise<void> {
    await this.#finishing('complete', ref, [token, 'done', JSON.stringify(answer), IDEMPOTENCY_TTL_MS])
  }

  async keepPartial (ref: KeyRef, token: string, partial: PartialDelivery): Promise<void> {
    await this.#finishing('keep', ref, [token, 'partial', JSON.stringify(partial), IDEMPOTENCY_TTL_MS])
  }

  async release (ref: KeyRef, token: string): Promise<void> {
    await this.#finishing('release', ref, [token, 'release', '', 0])
  }

  async #finishing (what: string, ref: KeyRef, args: (string | number)[]): Promise<void> {
    const [done] = await this.#call(what, () => this.#finish.call(ref.tenant, idemKey(ref), args))
    if (typeof done === 'string') throw new StateUnavailableError(`redis: ${what} failed: ${done}`)
  }

  async take (tenant: string, events: number, limit: RateLimit): Promise<Taken> {
    const interval = 1000 / limit.perSecond
    const take = () => this.#redis.evgTake(`evg:rate:{${tenant}}`, interval, limit.burst, events)
    const [allowed, retry, used] = await this.#call('rate limit', take)
    return { allowed: allowed === 1, retryInMs: Number(retry), fullInMs: Number(used) }
  }

  async close (): Promise<void> {
    // Gathered calls go before QUIT, which waits for their replies.
    this.#reserve.flush()
    this.#finish.flush()
    try {
      await this.#redis.quit()
    } catch {
      this.#redis.disconnect()
    }
  }
}
