import { codeOf, messageOf } from '../src/errors.js'

// What a test file needs from outside its own process (a broker, a database, a program) and what
// happens when it is missing. By default the tests that need it are skipped with a message saying
// so; under REQUIRE_BROKERS=1 (CI) the absence fails the file instead; under TEST_SERVICES=none
// (`npm run test:unit`) nothing is probed and every service counts as absent, skipped even under
// REQUIRE_BROKERS=1.

export type Service = 'RabbitMQ' | 'PostgreSQL' | 'Redis' | 'Python'

export interface Need {
  /** Where it was looked for (a URL, a program), said in every message. */
  at: string
  /** Resolves when the service answers; rejects, saying why, when it does not. */
  probe: () => Promise<unknown>
  /** What to do about an absence, said when skipping: "start it with …". */
  hint?: string
  /** Under REQUIRE_BROKERS=1, how long an absence is waited out (probing each second) before it fails. */
  waitMs?: number
}

const required = () => process.env.REQUIRE_BROKERS === '1'
const noServices = () => process.env.TEST_SERVICES === 'none'

/**
 * The skip reason for the tests that need `service` (`t.test(name, { skip }, …)`), or false when
 * it answers. Under REQUIRE_BROKERS=1 an absence throws instead, failing the file with a message
 * naming the service.
 */
export async function serviceSkip (service: Service, need: Need): Promise<string | false> {
  if (noServices()) return `${service} not probed: TEST_SERVICES=none runs only the tests that need no service`
  let why = await absence(need.probe)
  if (why === undefined) return false
  if (required() && need.waitMs !== undefined) {
    const until = Date.now() + need.waitMs
    while (why !== undefined && Date.now() < until) {
      await new Promise(resolve => setTimeout(resolve, 1000)) // a service coming back sends no signal to await
      why = await absence(need.probe)
    }
    if (why === undefined) return false
  }
  if (required()) throw new Error(`${service} is required (REQUIRE_BROKERS=1) but not reachable at ${need.at}: ${why}`)
  const hint = need.hint === undefined ? '' : `; ${need.hint}`
  return `${service} not reachable at ${need.at}: ${why}${hint} (REQUIRE_BROKERS=1 makes this a failure)`
}

/**
 * For a need that is not a service to probe (ports free, say): `why` as the skip reason, or under
 * REQUIRE_BROKERS=1 a failure saying it (under TEST_SERVICES=none, still only a skip).
 */
export function unmet (why: string): string {
  if (required() && !noServices()) throw new Error(why)
  return why
}

/** Why the probe failed, or undefined when it answered. */
async function absence (probe: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await probe()
    return undefined
  } catch (err) {
    return messageOf(err) || String(codeOf(err) ?? err) // a refused connection can come with no message, only a code
  }
}
