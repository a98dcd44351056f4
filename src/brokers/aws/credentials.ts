import { ConfigError, messageOf } from '../../errors.js'

type Provider = () => Promise<unknown>

/**
 * Resolves the SDK's credentials chain once at start: a gateway that cannot sign a request must
 * not accept events it will never deliver.
 */
/**
 * What a gateway that cannot heal must not start with: no region (every call would fail) and no
 * credentials (it could not sign a request).
 */
export async function checkClient (
  config: { region: () => Promise<string>, credentials: Provider },
  service: string
): Promise<void> {
  let region: string | undefined
  try {
    region = await config.region()
  } catch {
    region = undefined
  }
  if (region === undefined || region === '') {
    throw new ConfigError(`AWS region: none is configured for ${service} (set AWS_REGION, or region on the destination)`)
  }
  await checkCredentials(config.credentials, service)
}

export async function checkCredentials (provider: Provider, service: string): Promise<void> {
  try {
    await provider()
  } catch (err) {
    throw new ConfigError(`AWS credentials: the SDK's credentials chain found none for ${service} ` +
      `(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role): ${messageOf(err)}`)
  }
}

/** How long a health probe (GetQueueAttributes, DescribeEventBus) may take before it counts as no answer. */
export const AWS_PROBE_TIMEOUT_MS = 2000

/**
 * A call's deadline, the nearest of `limits` (ms from now): each call is aborted when it passes,
 * its socket destroyed rather than left to the SDK's 15 minutes; none when no limit is known (a
 * client a test made).
 */
export function deadline (...limits: (number | undefined)[]): { abortSignal?: AbortSignal } {
  const ms = Math.min(...limits.map(l => l ?? Infinity))
  return Number.isFinite(ms) ? { abortSignal: AbortSignal.timeout(Math.max(1, ms)) } : {}
}

interface ClientSettings {
  region?: string
  endpoint?: string
  requestHandler?: { connectionTimeout: number, requestTimeout: number, throwOnRequestTimeout: true }
}

/**
 * Client settings a destination may name (what it leaves out comes from the SDK's own variables),
 * and time limits: a connection not made within `timeoutMs` (at most 3 s) fails, and a socket
 * silent for `timeoutMs` is destroyed, so a network that drops packets frees its sockets.
 */
export function awsClientConfig (opts: { region?: string, endpoint?: string, timeoutMs?: number }): ClientSettings {
  return {
    ...(opts.region === undefined ? {} : { region: opts.region }),
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
    ...(opts.timeoutMs === undefined
      ? {}
      // throwOnRequestTimeout: the request fails (and is destroyed) rather than the SDK printing a
      // warning line on stderr, outside the JSON log, for each request that went silent.
      : {
          requestHandler: { connectionTimeout: Math.min(opts.timeoutMs, 3000), requestTimeout: opts.timeoutMs, throwOnRequestTimeout: true }
        })
  }
}

/**
 * An SQS client's region and endpoint. An endpoint named on purpose (the destination's,
 * AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL) wins over the queue URL's host, which the SDK would
 * otherwise call (an emulator's queue URL names hosts such as sqs.eu-central-1.localhost).
 */
export function sqsClientConfig (
  opts: { region?: string, endpoint?: string, timeoutMs?: number }
): ClientSettings & { useQueueUrlAsEndpoint?: boolean } {
  const explicit = opts.endpoint ?? process.env.AWS_ENDPOINT_URL_SQS ?? process.env.AWS_ENDPOINT_URL
  return { ...awsClientConfig(opts), ...(explicit === undefined ? {} : { useQueueUrlAsEndpoint: false }) }
}

/**
 * A readiness probe refused for lack of permission still reached the service and was signed: a
 * least-privilege producer (only sqs:SendMessage / events:PutEvents) is ready.
 */
export function probeAnswered (reason: string): boolean {
  return /^(access_denied|authorization_error|unauthorized_operation)$/.test(reason)
}
