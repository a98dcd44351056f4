import { createHmac, hash } from 'node:crypto'
import stringify from 'safe-stable-stringify'
import { GatewayError } from '../errors.js'
import type { GatewayEvent } from '../envelopes/event.js'

/** How long a key keeps its first answer (or its partly delivered event). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000
const KEY = /^[\x21-\x7e]{1,255}$/

export interface StoredAnswer {
  status: number
  body: unknown
}

/** A key and the request it stands for, per tenant. */
export interface KeyRef {
  tenant: string
  key: string
  /** The request's fingerprint: a repeat must have the same one. */
  print: string
}

/** An event some of its destinations still lack: a repeat completes only those. */
export interface PartialDelivery {
  /**
   * The event without its data (`{}`): a repeat has the same data, by its fingerprint, and the
   * store never holds a value some destination gets protected.
   */
  event: GatewayEvent
  delivered: string[]
}

/** What reserving a key gives. */
export type Reservation =
  /** The caller now publishes under the key, until it completes, keeps a partial or releases it. */
  | { state: 'reserved', token: string, partial?: PartialDelivery }
  /** The first request's answer: replay it, publish nothing. */
  | { state: 'done', answer: StoredAnswer }
  /** Another request (here or on another replica) holds the key for `retryInMs` at most. */
  | { state: 'busy', retryInMs: number }
  /** The key was used with another request. */
  | { state: 'conflict' }

/**
 * Idempotency keys, per tenant. `reserve` is atomic: of any number of concurrent callers, in this
 * process or another sharing the store, one gets the key and the others see it busy. A holder
 * that dies loses the key after `leaseMs`. The finishing calls take the reservation's token and
 * do nothing when the key is no longer theirs.
 */
export interface IdempotencyStore {
  reserve (ref: KeyRef, leaseMs: number): Promise<Reservation>
  /** The event was published: keep the answer for IDEMPOTENCY_TTL_MS. */
  complete (ref: KeyRef, token: string, answer: StoredAnswer): Promise<void>
  /** Some destinations have the event: keep it so that a repeat completes the others. */
  keepPartial (ref: KeyRef, token: string, partial: PartialDelivery): Promise<void>
  /** Nothing was published: the key is free again (or back to its partly delivered event). */
  release (ref: KeyRef, token: string): Promise<void>
}

/**
 * Same type and same JSON value (any key order, any number spelling) give the same fingerprint.
 * With `key` (the tenant's, when fields are protected) an HMAC: the stored fingerprint cannot be
 * matched against guesses of a protected value by whoever reads the state store.
 */
export function fingerprint (type: string, data: unknown, key?: Buffer): string {
  const text = `${type}\0${stringify(data) ?? ''}`
  // One-shot hash: no Hash object per request.
  return key === undefined ? hash('sha256', text, 'hex') : createHmac('sha256', key).update(text).digest('hex')
}

/** The header (EVG_BAD_CONTEXT), or a batch event's `idempotencyKey` at `path` (EVG_VALIDATION). */
export function checkIdempotencyKey (key: string, path?: string): void {
  if (KEY.test(key)) return
  if (path === undefined) throw new GatewayError('EVG_BAD_CONTEXT', 'Idempotency-Key must be 1 to 255 visible ASCII characters')
  throw new GatewayError('EVG_VALIDATION', `${path.slice(1).replaceAll('/', '.')} must be 1 to 255 visible ASCII characters`, {
    extensions: { errors: [{ path, message: 'must be 1 to 255 visible ASCII characters' }] }
  })
}

export function conflict (detail = 'this Idempotency-Key was already used with a different request'): GatewayError {
  return new GatewayError('EVG_IDEMPOTENCY_CONFLICT', detail)
}

/** The store cannot be reached: keyed requests are refused rather than risk a second publish. */
export class StateUnavailableError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StateUnavailableError'
  }
}
