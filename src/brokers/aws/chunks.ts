import { BrokerError, type PublishOutcome } from '../broker.js'
import { classifyAwsError } from './errors.js'

export interface Pending<E> {
  /** Position of the event in the publish call, where its outcome goes. */
  index: number
  entry: E
}

/** The refusal of an entry over the service's size limit (answered 413), before any call. */
export function sizeRefusal (service: string, size: number, limits: { maxBytes: number, noun: string }): BrokerError | undefined {
  if (size <= limits.maxBytes) return undefined
  return new BrokerError(`the ${limits.noun} is ${size} bytes; ${service} takes at most ${limits.maxBytes}`, {
    retryable: false,
    reason: 'too_large',
    tooLarge: true
  })
}

/**
 * The shape SQS and EventBridge batches share: entries over the service's size limit are refused
 * before any call (answered 413), the rest are sent in calls of at most `per` entries, and a call
 * that fails as a whole fails every entry it carried. `send` records per-entry outcomes;
 * `total` is how many entries are sent across all chunks.
 */
export async function sendInChunks<E> (
  service: string,
  built: readonly { entry: E, size: number }[],
  limits: { maxBytes: number, per: number, noun: string },
  send: (chunk: Pending<E>[], outcomes: PublishOutcome[], total: number) => Promise<void>
): Promise<PublishOutcome[]> {
  const outcomes: PublishOutcome[] = new Array(built.length)
  const pending: Pending<E>[] = []
  built.forEach(({ entry, size }, index) => {
    const tooLarge = sizeRefusal(service, size, limits)
    if (tooLarge !== undefined) {
      outcomes[index] = { ok: false, error: tooLarge }
    } else {
      pending.push({ index, entry })
    }
  })
  for (let start = 0; start < pending.length; start += limits.per) {
    const chunk = pending.slice(start, start + limits.per)
    try {
      await send(chunk, outcomes, pending.length)
    } catch (err) {
      const error = classifyAwsError(err, service)
      for (const { index } of chunk) outcomes[index] = { ok: false, error }
    }
  }
  return outcomes
}
