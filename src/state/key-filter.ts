import { IDEMPOTENCY_TTL_MS } from './idempotency.js'

/**
 * A 53-bit hash of a tenant's key (a safe integer, so SQLite gives it back exactly): the embedded
 * store's index and KeyFilter's input. Not unique: a look-up also compares tenant and key.
 */
export function keyHash (tenant: string, key: string): number {
  // cyrb53 (public domain), over tenant, a separator and key, without building the joined string.
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < tenant.length; i++) {
    const c = tenant.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 2654435761)
    h2 = Math.imul(h2 ^ c, 1597334677)
  }
  h1 = Math.imul(h1, 2654435761)
  h2 = Math.imul(h2, 1597334677)
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 2654435761)
    h2 = Math.imul(h2 ^ c, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507)
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507)
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}

/** 2^24 bits (2 MB) per generation, 5 probes: about 0.1 % false positives at 1M keys a day, 2 % at 2M. */
const BITS_LOG2 = 24
const PROBES = 5

/**
 * Which keys may have a stored answer: a Bloom filter over the keys of the last 24 hours, so that
 * a fresh key (the usual case) needs no read of the database. No false negatives: every key is
 * added before its row can be written. A false positive costs only the read. Two generations of
 * 24 hours each, the older dropped when a new one starts: a key stays at least 24 hours. Fixed
 * memory (4 MB): past a few million keys a day, more look-ups go to the database.
 */
export class KeyFilter {
  #current = new Int32Array(2 ** (BITS_LOG2 - 5))
  #previous = new Int32Array(2 ** (BITS_LOG2 - 5))
  #since: number

  constructor (now = Date.now()) {
    this.#since = now
  }

  add (hash: number, now = Date.now()): void {
    this.#turn(now)
    const bits = this.#current
    let x = hash >>> 0
    const step = Math.imul(Math.floor(hash / 4294967296), 0x9e3779b1) | 1
    for (let i = 0; i < PROBES; i++) {
      const bit = x >>> (32 - BITS_LOG2)
      bits[bit >>> 5] = bits[bit >>> 5]! | (1 << (bit & 31))
      x = (x + step) >>> 0
    }
  }

  mayHave (hash: number, now = Date.now()): boolean {
    this.#turn(now)
    return this.#in(this.#current, hash) || this.#in(this.#previous, hash)
  }

  #in (bits: Int32Array, hash: number): boolean {
    let x = hash >>> 0
    const step = Math.imul(Math.floor(hash / 4294967296), 0x9e3779b1) | 1
    for (let i = 0; i < PROBES; i++) {
      const bit = x >>> (32 - BITS_LOG2)
      if ((bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false
      x = (x + step) >>> 0
    }
    return true
  }

  #turn (now: number): void {
    if (now - this.#since < IDEMPOTENCY_TTL_MS) return
    const older = this.#previous
    this.#previous = this.#current
    // A whole generation passed with no call: the previous one is older than 24 hours too.
    if (now - this.#since >= 2 * IDEMPOTENCY_TTL_MS) this.#previous.fill(0)
    older.fill(0)
    this.#current = older
    this.#since = now
  }
}
