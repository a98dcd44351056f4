/**
 * Patterns as API-key scopes and routes write them: `*` for anything, `call.*` (any
 * pattern ending in `*`) for a prefix, anything else for one value exactly.
 */
export function patternMatcher (patterns: readonly string[]): (value: string) => boolean {
  if (patterns.includes('*')) return () => true
  const exact = new Set(patterns.filter(p => !p.endsWith('*')))
  const prefixes = patterns.filter(p => p.endsWith('*')).map(p => p.slice(0, -1))
  return (value: string) => exact.has(value) || prefixes.some(p => value.startsWith(p))
}
