import { parseArgs, type ParseArgsConfig } from 'node:util'
import { loadConfig, orExitOnConfigError, type Config } from '../config/index.js'
import { messageOf } from '../errors.js'

/** Config for a CLI: a bad environment prints the reason and exits 1. */
export function cliConfig (): Promise<Config> {
  return orExitOnConfigError(() => loadConfig())
}

/** The command line, strictly: an unknown or malformed option prints the usage and exits 1. */
export function cliArgs<const O extends NonNullable<ParseArgsConfig['options']>> (usage: string, options: O) {
  try {
    return parseArgs({ options }).values
  } catch (err) {
    console.error(`${messageOf(err)}\nusage: ${usage}`)
    process.exit(1)
  }
}

/** Prints why and ends the process with `code` (each CLI documents its codes). */
export function exitWith (code: number, message: string): never {
  console.error(message)
  process.exit(code)
}

/** Whether a value read from JSON is an object (not null, not an array), whose fields can be read. */
export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** The fields of a value read from JSON: none unless it is an object. */
export function jsonObject (value: unknown): Record<string, unknown> {
  return isObject(value) ? value : {}
}

export { safeUrl } from '../observability/safe-url.js'
