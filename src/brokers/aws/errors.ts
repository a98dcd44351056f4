import { BrokerError } from '../broker.js'

// Codes AWS documents as worth retrying; everything else from AWS is the caller's fault.
const RETRYABLE_CODES = new Set([
  'InternalFailure', 'InternalError', 'ServiceUnavailable', 'ThrottlingException', 'Throttling',
  'RequestThrottled', 'RequestThrottledException', 'TooManyRequestsException', 'RequestTimeout',
  'RequestTimeoutException', 'TimeoutError', 'SlowDown', 'KMS.ThrottlingException'
])

export function isRetryableCode (code: string | undefined): boolean {
  return code !== undefined && RETRYABLE_CODES.has(code)
}

interface SdkError {
  name?: string
  code?: string
  message?: string
  $fault?: 'client' | 'server'
  $metadata?: { httpStatusCode?: number }
  $retryable?: unknown
}

/** An AWS SDK failure of a whole call, classified for delivery. */
export function classifyAwsError (err: unknown, service: string): BrokerError {
  // What the SDK throws: an Error with these fields, each of which may be missing.
  const e = err as SdkError
  const name = e.name ?? e.code ?? 'Error'
  const status = e.$metadata?.httpStatusCode
  // Our deadline passed (the call was aborted) or the socket went silent: no answer, not a refusal.
  if (status === undefined && /^(AbortError|TimeoutError)$/.test(name)) {
    return new BrokerError(`${service} did not answer in time: ${e.message ?? name}`, { retryable: true, reason: 'timeout', cause: err })
  }
  // No HTTP answer at all: the endpoint is unreachable (refused, DNS, reset).
  if (status === undefined && e.$fault === undefined) {
    const down = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(`${e.code ?? ''} ${e.message ?? ''}`)
    return new BrokerError(`${service} unreachable: ${e.message ?? name}`, { retryable: true, reason: 'unreachable', down, cause: err })
  }
  const retryable = isRetryableCode(name) || e.$retryable !== undefined || e.$fault === 'server' || (status !== undefined && status >= 500)
  const reason = retryable ? (/thrott/i.test(name) ? 'throttled' : 'server_error') : snake(name)
  // A timeout the SDK reports (our request deadline, a socket timeout) is no answer; any HTTP status is one.
  const answered = status !== undefined
  return new BrokerError(`${service}: ${name}: ${e.message ?? ''}`.trim(), { retryable, reason, answered, cause: err })
}

function snake (name: string): string {
  return name.replace(/Exception$/, '').replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9_]/g, '_').toLowerCase()
}
