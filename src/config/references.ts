import { ConfigError } from '../errors.js'

const reference = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/**
 * `${NAME}` (or `${NAME:-default}`) in a string, from the environment. The value is never part of
 * an error message: it may be a password.
 */
export function expandReferences (text: string, env: Record<string, string | undefined>, where: string): string {
  return text.replace(reference, (_match, name: string, fallback: string | undefined) => {
    const value = env[name]
    if (value !== undefined && value !== '') return value
    if (fallback !== undefined) return fallback
    throw new ConfigError(`${where}: \${${name}} is not set in the environment`)
  })
}
