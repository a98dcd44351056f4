/**
 * The JSON body parser every route uses: a body is parsed once, here, and refused with
 * EVG_VALIDATION before anything walks it when it could harm what comes after.
 */
import type { FastifyRequest } from 'fastify'
import sjson from 'secure-json-parse'
import { GatewayError, messageOf } from '../errors.js'

export const MAX_JSON_DEPTH = 64

/**
 * Deepest nesting of arrays/objects in a JSON text, stopping early past `limit`. Strings are
 * skipped with indexOf to their closing quote (one not escaped by an odd run of backslashes)
 * rather than character by character: payloads are mostly string content.
 */
export function jsonDepthExceeds (text: string, limit: number): boolean {
  let depth = 0
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === 34) {
      let end = text.indexOf('"', i + 1)
      for (;;) {
        if (end === -1) return false // unterminated: the parser refuses it
        let slashes = 0
        while (text.charCodeAt(end - 1 - slashes) === 92) slashes++
        if (slashes % 2 === 0) break
        end = text.indexOf('"', end + 1)
      }
      i = end
    } else if (c === 123 || c === 91) {
      if (++depth > limit) return true
    } else if (c === 125 || c === 93) {
      depth--
    }
  }
  return false
}

// A number JSON.parse turns into Infinity has an exponent of 300 or more, or 309 digits: only
// then is the parsed value walked.
const HUGE_NUMBER = /[eE]\+?0*[3-9]\d\d|[eE]\+?0*[1-9]\d{3}|\d{309}/

function hasNonFinite (value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value)
  if (typeof value !== 'object' || value === null) return false
  return (Array.isArray(value) ? value : Object.values(value)).some(hasNonFinite)
}

/**
 * Our JSON body parser: rejects prototype-poisoning keys and absurd nesting before anything
 * walks the value (deep values would overflow the stack when serialized later), and numbers
 * too large to be numbers (1e400 would pass validation as Infinity, then be stored as null).
 */
export function parseJsonBody (_req: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void): void {
  if (body.length === 0) return done(new GatewayError('EVG_VALIDATION', 'the body is empty; send a JSON object'))
  if (jsonDepthExceeds(body, MAX_JSON_DEPTH)) {
    return done(new GatewayError('EVG_VALIDATION', `the body nests deeper than ${MAX_JSON_DEPTH} levels`))
  }
  let value: unknown
  try {
    value = sjson.parse(body, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    return done(new GatewayError('EVG_VALIDATION', `the body is not valid JSON: ${messageOf(err)}`))
  }
  if (HUGE_NUMBER.test(body) && hasNonFinite(value)) {
    return done(new GatewayError('EVG_VALIDATION', 'the body has a number too large to represent (such as 1e400)'))
  }
  done(null, value)
}
