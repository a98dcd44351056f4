import { ConfigError } from '../../errors.js'

type Provider = () => Promise<unknown>

/**
 * Resolves the SDK's credentials chain once at start: a gateway that cannot sign a request must
 * not accept events it will never deliver.
 */
export async function checkCredentials (provider: Provider, service: string): Promise<void> {
  try {
    await provider()
  } catch (err) {
    throw new ConfigError(`AWS credentials: the SDK's credentials chain found none for ${service} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role): ${(err as Error).message}`)
  }
}

/** Client settings a destination may name; what it leaves out comes from the SDK's own variables. */
export function awsClientConfig (opts: { region?: string, endpoint?: string }): { region?: string, endpoint?: string } {
  return { ...(opts.region === undefined ? {} : { region: opts.region }), ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }) }
}
