// The text inside a template's `{{ }}`: a field of the event, then optional fallbacks after `??`
// (`{{user ?? 'system'}}`, `{{data.agent_id ?? user ?? null}}`). Parsed once, at start.

export type Literal = string | number | boolean | null

/** One `{{ }}`: the fields to try in order, and the literal to use when none is there. */
export interface Expression {
  fields: string[]
  /** Present when the expression ends with a literal (`?? 'system'`, `?? null`). */
  fallback?: { value: Literal }
}

export type Segment = { text: string } | { expression: Expression, source: string }

/** A template that cannot be compiled; the caller adds where it is (file, destination, field, type). */
export class TemplateError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'TemplateError'
  }
}

const FIELD = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_$-]+)*$/
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/

function literal (text: string): Literal | undefined {
  if (text === 'null') return null
  if (text === 'true') return true
  if (text === 'false') return false
  if (NUMBER.test(text)) return Number(text)
  const quote = text[0]
  if ((quote === '\'' || quote === '"') && text.length >= 2 && text.endsWith(quote)) {
    const body = text.slice(1, -1)
    if (body.replaceAll(`\\${quote}`, '').includes(quote)) return undefined
    return body.replaceAll(`\\${quote}`, quote).replaceAll('\\\\', '\\')
  }
  return undefined
}

/** Splits on `??` outside quoted literals. */
function splitAlternatives (source: string): string[] {
  const parts: string[] = []
  let quote: string | undefined
  let start = 0
  for (let i = 0; i < source.length; i++) {
    const c = source.charAt(i)
    if (quote !== undefined) {
      if (c === '\\') i++
      else if (c === quote) quote = undefined
    } else if (c === '\'' || c === '"') {
      quote = c
    } else if (c === '?' && source[i + 1] === '?') {
      parts.push(source.slice(start, i))
      start = i + 2
      i++
    }
  }
  parts.push(source.slice(start))
  return parts
}

/** Where the `}}` that closes a placeholder opened just before `from` is, outside quoted literals; -1 when none. */
function closing (text: string, from: number): number {
  let quote: string | undefined
  for (let i = from; i < text.length; i++) {
    const c = text.charAt(i)
    if (quote !== undefined) {
      if (c === '\\') i++
      else if (c === quote) quote = undefined
    } else if (c === '\'' || c === '"') {
      quote = c
    } else if (c === '}' && text[i + 1] === '}') {
      return i
    }
  }
  return -1
}

export function parseExpression (source: string): Expression {
  const alternatives = splitAlternatives(source).map(s => s.trim())
  const fields: string[] = []
  let fallback: { value: Literal } | undefined
  alternatives.forEach((alt, i) => {
    if (alt === '') throw new TemplateError(`{{${source}}}: an empty expression`)
    const value = literal(alt)
    if (value !== undefined) {
      if (i !== alternatives.length - 1) {
        throw new TemplateError(`{{${source}}}: the literal ${alt} must come last, after the fields to try`)
      }
      if (i === 0) throw new TemplateError(`{{${source}}}: a literal alone is not a placeholder; write it without {{ }}`)
      fallback = { value }
      return
    }
    if (!FIELD.test(alt)) {
      throw new TemplateError(`{{${source}}}: '${alt}' is neither a field (id, type, data.call_id, ...) ` +
        'nor a literal (\'text\', 1, true, null)')
    }
    fields.push(alt)
  })
  return { fields, ...(fallback === undefined ? {} : { fallback }) }
}

/** Splits a template string into its text and its `{{ }}` placeholders. */
export function parseSegments (text: string): Segment[] {
  if (text.includes('${')) {
    throw new TemplateError(`'${text}': placeholders are written {{ }} (\${NAME} is for the environment, in a destination's own fields)`)
  }
  const segments: Segment[] = []
  let rest = text
  for (;;) {
    const open = rest.indexOf('{{')
    if (open === -1) break
    const close = closing(rest, open + 2)
    if (close === -1) throw new TemplateError(`'${text}': a {{ without its closing }}`)
    if (open > 0) segments.push({ text: rest.slice(0, open) })
    const source = rest.slice(open + 2, close)
    segments.push({ expression: parseExpression(source), source: source.trim() })
    rest = rest.slice(close + 2)
  }
  if (rest !== '') segments.push({ text: rest })
  return segments
}
