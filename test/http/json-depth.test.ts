import t from 'tap'
import { jsonDepthExceeds } from '../../src/http/json-body.js'

/** The character-by-character scan the faster one replaced: the reference. */
function reference (text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92) i++
      else if (c === 34) inString = false
    } else if (c === 34) {
      inString = true
    } else if (c === 123 || c === 91) {
      if (++depth > limit) return true
    } else if (c === 125 || c === 93) {
      depth--
    }
  }
  return false
}

t.test('nesting is counted outside strings only, escaped quotes and backslashes included', async t => {
  const deep = (n: number, inner = '1') => '['.repeat(n) + inner + ']'.repeat(n)
  const cases = [
    deep(3), deep(4), deep(5),
    `{"a":"[[[[[[","b":${deep(2)}}`,
    '{"a":"\\"[[[[[[","b":1}',
    `{"a":"\\\\","b":${deep(4)}}`,
    '{"a":"\\\\\\"[[[[[[","b":1}',
    '{"a":"x\\\\\\\\"}[[[[[[',
    '["unterminated [[[[[[',
    '"', '', '[[[["]]]]', `{"k\\"[[[[[":${deep(3)}}`
  ]
  for (const text of cases) {
    for (const limit of [2, 3, 4]) t.equal(jsonDepthExceeds(text, limit), reference(text, limit), `${text} (limit ${limit})`)
  }
  t.equal(jsonDepthExceeds(deep(65), 64), true)
  t.equal(jsonDepthExceeds(`{"s":"${'x'.repeat(100000)}","d":${deep(64)}}`, 64), true, 'past a long string, nesting still counts')
})
