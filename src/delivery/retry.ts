export interface RetryPolicy {
  maxAttempts: number
  baseMs: number
  maxMs: number
  timeoutMs: number
}

/** Exponential backoff with full jitter: a random wait in [0, min(max, base * 2^(attempt-1))). */
export function backoffMs (attempt: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1))
  return Math.floor(random() * ceiling)
}
