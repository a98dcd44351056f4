import t from 'tap'
import { patternBounds } from '../../src/envelopes/pattern-bounds.js'

t.test('the shortest and longest text an anchored pattern takes, and whether it is printable ASCII', async t => {
  const cases: [string, ReturnType<typeof patternBounds>][] = [
    ['^[A-Z][A-Z0-9_]{0,31}$', { minLength: 1, ascii: true, maxLength: 32 }],
    ['^\\+[1-9][0-9]{1,14}$', { minLength: 3, ascii: true, maxLength: 16 }],
    ['^(a|bcd)-(x{2}|y)$', { minLength: 3, ascii: true, maxLength: 6 }],
    ['^(?=x)[a-z]{2}$', { minLength: 2, ascii: true, maxLength: 2 }],
    ['^\\w{3}$', { minLength: 3, ascii: true, maxLength: 3 }],
    ['^[a-z]{0,5}$', { minLength: 0, ascii: true, maxLength: 5 }],
    ['^.{3}$', { minLength: 3, ascii: false, maxLength: 3 }],
    ['^[^a]{2}$', { minLength: 2, ascii: false, maxLength: 2 }],
    ['^ab c$', { minLength: 4, ascii: false, maxLength: 4 }],
    ['^é{2}$', { minLength: 2, ascii: false, maxLength: 2 }],
    ['^[a-z]+$', { minLength: 1, ascii: true }],
    ['^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$', { minLength: 2, ascii: true }],
    ['^(a)\\1$', { minLength: 1, ascii: false }],
    ['[a-z]{2}', { minLength: 2, ascii: false }],
    ['^[a-z]{2}', { minLength: 2, ascii: false }],
    ['^a$|b', { minLength: 1, ascii: false }],
    // Ajv's u flag: property and code-point escapes are not measured.
    ['^\\p{L}{1,10}$', { minLength: 0, ascii: false }],
    ['^[\\u{1F600}-\\u{1F64F}]$', { minLength: 0, ascii: false }],
    ['^(unclosed$', { minLength: 0, ascii: false }]
  ]
  for (const [pattern, bounds] of cases) t.same(patternBounds(pattern), bounds, pattern)
})
