// JSON Pointers (RFC 6901), as field errors and protect rules name fields: `~1` is a `/` inside a
// name, `~0` a `~`.

/** `/a~1b/c` -> ['a/b', 'c']. */
export function pointerTokens (pointer: string): string[] {
  return pointer.slice(1).split('/').map(t => t.replaceAll('~1', '/').replaceAll('~0', '~'))
}

/** ['a/b', 'c'] -> `/a~1b/c`. */
export function pointerOf (tokens: readonly string[]): string {
  return tokens.map(t => `/${t.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('')
}

/** `/protect/call.ended/~1transcript` -> `protect.call.ended./transcript`: a field as a JSON file spells it. */
export function dottedPath (pointer: string): string {
  return pointerTokens(pointer).join('.')
}
