import { createRequire } from 'node:module'
import type * as Ret from 'ret'
import type { Root, Set as SetToken, Token } from 'ret'

// ret is CommonJS: its module is the tokenizer itself, with `types` on it.
const tokenizer = createRequire(import.meta.url)('ret') as typeof Ret.tokenizer & { types: typeof Ret.types }
const types = tokenizer.types

// What a JSON Schema `pattern` says of the longest text it takes and of its characters: the
// catalog bounds many fields by pattern alone (`^[A-Z][A-Z0-9_]{0,31}$`, E.164), and a message
// field made of one (a routing key, an SQS group id) is proven to fit by it.

export interface PatternBounds {
  /** Longest text the pattern takes, in characters; undefined when unbounded (`*`, `+`, unanchored). */
  maxLength?: number
  /** Shortest text it takes (0 when it says nothing). */
  minLength: number
  /** Every character it takes is printable ASCII, space excluded. */
  ascii: boolean
}

const PRINTABLE = (code: number) => code >= 0x21 && code <= 0x7e
/** Ajv compiles patterns with the u flag, which ret does not know: property escapes and code-point escapes are not measured. */
const UNICODE_ONLY = /\\[pP]\{|\\u\{/

function setIsAscii (set: SetToken): boolean {
  if (set.not) return false
  return set.set.every(s => {
    if (s.type === types.CHAR) return PRINTABLE(s.value)
    if (s.type === types.RANGE) return PRINTABLE(s.from) && PRINTABLE(s.to)
    return setIsAscii(s)
  })
}

interface Measure { min: number, max: number, ascii: boolean }

function sequence (tokens: readonly Token[]): Measure {
  let min = 0
  let max = 0
  let ascii = true
  for (const token of tokens) {
    const m = measure(token)
    min += m.min
    max += m.max
    ascii &&= m.ascii
  }
  return { min, max, ascii }
}

function alternatives (stack: Token[] | undefined, options: Token[][] | undefined): Measure {
  const all = (options ?? [stack ?? []]).map(sequence)
  return { min: Math.min(...all.map(m => m.min)), max: Math.max(0, ...all.map(m => m.max)), ascii: all.every(m => m.ascii) }
}

function measure (token: Token): Measure {
  switch (token.type) {
    case types.POSITION: return { min: 0, max: 0, ascii: true }
    case types.CHAR: return { min: 1, max: 1, ascii: PRINTABLE(token.value) }
    case types.SET: return { min: 1, max: 1, ascii: setIsAscii(token) }
    case types.GROUP: {
      // Lookarounds take no characters.
      if (token.followedBy === true || token.notFollowedBy === true || token.lookBehind === true) return { min: 0, max: 0, ascii: true }
      return alternatives(token.stack, token.options)
    }
    case types.REPETITION: {
      const inner = measure(token.value)
      return { min: token.min * inner.min, max: inner.max === 0 ? 0 : token.max * inner.max, ascii: inner.ascii }
    }
    case types.REFERENCE: return { min: 0, max: Infinity, ascii: false }
  }
}

/** Bounds of an anchored pattern (`^...$`, each alternative anchored); a pattern that is not, or does not parse, bounds nothing. */
export function patternBounds (pattern: string): PatternBounds {
  if (UNICODE_ONLY.test(pattern)) return { minLength: 0, ascii: false }
  let root: Root
  try {
    root = tokenizer(pattern)
  } catch {
    return { minLength: 0, ascii: false }
  }
  const branches = root.options ?? [root.stack ?? []]
  const anchored = branches.every(b => {
    const first = b[0]
    const last = b[b.length - 1]
    return first?.type === types.POSITION && first.value === '^' && last?.type === types.POSITION && last.value === '$'
  })
  const m = alternatives(root.stack, root.options)
  // Unanchored, a pattern still says the text has its shortest match in it.
  if (!anchored) return { minLength: m.min, ascii: false }
  return { minLength: m.min, ascii: m.ascii, ...(Number.isFinite(m.max) ? { maxLength: m.max } : {}) }
}
