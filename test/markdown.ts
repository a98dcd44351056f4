import { readFileSync } from 'node:fs'

// Just enough Markdown for the tests that hold the documents in docs/ against the code: sections
// by heading, table rows, code spans, fenced blocks and links.

export const root = new URL('../', import.meta.url)

export function readDoc (path: string): string {
  return readFileSync(new URL(path, root), 'utf8')
}

/** Lines outside fenced code blocks, with their fenced state, so `# comments` in code are no headings. */
function proseLines (markdown: string): { line: string, fenced: boolean }[] {
  let fenced = false
  return markdown.split('\n').map(line => {
    if (line.startsWith('```')) {
      fenced = !fenced
      return { line, fenced: true }
    }
    return { line, fenced }
  })
}

const level = (line: string): number => /^(#{1,6}) /.exec(line)?.[1]?.length ?? 0

/** The headings of a document, as written (`## Failure reasons`). */
export function headings (markdown: string): string[] {
  return proseLines(markdown).filter(l => !l.fenced && level(l.line) > 0).map(l => l.line)
}

/**
 * The text under a heading line written exactly as `heading` (e.g. "### `sqs`"), up to the next
 * heading of the same or a higher level; undefined when there is no such heading.
 */
export function section (markdown: string, heading: string): string | undefined {
  const lines = proseLines(markdown)
  const start = lines.findIndex(l => !l.fenced && l.line === heading)
  if (start === -1) return undefined
  const depth = level(heading)
  const end = lines.findIndex((l, i) => i > start && !l.fenced && level(l.line) > 0 && level(l.line) <= depth)
  return lines.slice(start + 1, end === -1 ? undefined : end).map(l => l.line).join('\n')
}

/** The body rows of every table in the text (header and separator rows left out), as trimmed cells. */
export function tableRows (markdown: string): string[][] {
  const rows: string[][] = []
  let inTable = false
  for (const { line, fenced } of proseLines(markdown)) {
    const isRow = !fenced && line.startsWith('|')
    if (isRow && inTable && !/^\|[\s|:-]+\|$/.test(line)) rows.push(line.slice(1, -1).split('|').map(c => c.trim()))
    inTable = isRow
  }
  return rows
}

/** The code spans of a table cell or a line: "`a`, `b`" gives ['a', 'b']. */
export function codes (text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map(m => m[1] as string)
}

/** The contents of the fenced blocks of a language (```json). */
export function fencedBlocks (markdown: string, language: string): string[] {
  return [...markdown.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm'))].map(m => m[1] as string)
}

/** Link targets outside code: `[text](target)`. */
export function links (markdown: string): string[] {
  const prose = proseLines(markdown).filter(l => !l.fenced).map(l => l.line.replace(/`[^`]*`/g, '')).join('\n')
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map(m => m[1] as string)
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
export function anchor (heading: string): string {
  return heading.replace(/^#+ /, '').trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}
