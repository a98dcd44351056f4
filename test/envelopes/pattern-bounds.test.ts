import t from 'tap'
import { patternBounds } from '../../src/envelopes/pattern-bounds.js'

t.test('the longest text an anchored pattern takes, and whether it is printable ASCII', async t => {
  const cases: [string, ReturnType<typeof patternBounds>][] = [
    ['^[A-Z][A-Z0-9_]{0,31}$', { ascii: true, maxLength: 32 }],
    ['^\\+[1-9][0-9]{1,14}$', { ascii: true, maxLength: 16 }],
    ['^(a|bcd)-(x{2}|y)$', { ascii: true, maxLength: 6 }],
    ['^(?=x)[a-z]{2}$', { ascii: true, maxLength: 2 }],
    ['^\\w{3}$', { ascii: true, maxLength: 3 }],
    ['^.{3}$', { ascii: false, maxLength: 3 }],
    ['^[^a]{2}$', { ascii: false, maxLength: 2 }],
    ['^ab c$', { ascii: false, maxLength: 4 }],
    ['^é{2}$', { ascii: false, maxLength: 2 }],
    ['^[a-z]+$', { ascii: true }],
    ['^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$', { ascii: true }],
    ['^(a)\\1$', { ascii: false }],
    ['[a-z]{2}', { ascii: false }],
    ['^[a-z]{2}', { ascii: false }],
    ['^a$|b', { ascii: false }],
    ['^(unclosed$', { ascii: false }]
  ]
  for (const [pattern, bounds] of cases) t.same(patternBounds(pattern), bounds, pattern)
})
