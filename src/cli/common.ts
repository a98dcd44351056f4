import { loadConfig, orExitOnConfigError, type Config } from '../config.js'

/** Config for a CLI: a bad environment prints the reason and exits 1. */
export function cliConfig (): Promise<Config> {
  return orExitOnConfigError(() => loadConfig())
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
