import { ConfigError, loadConfig, type Config } from '../config.js'

/** Config for a CLI: a bad environment prints the reason and exits 1. */
export function cliConfig (): Config {
  try {
    return loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(1)
    }
    throw err
  }
}

/** The URL with its password masked, for printing. */
export function safeUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}
