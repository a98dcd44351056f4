import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { ERRORS, GatewayError, problem } from '../src/errors.js'

t.test('the README error table is exactly the codes in src/errors.ts', async t => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const rows = [...readme.matchAll(/^\| `(EVG_[A-Z_]+)` \| (\d{3}) \|/gm)].map(m => [m[1], Number(m[2])])
  t.same(Object.fromEntries(rows), Object.fromEntries(Object.entries(ERRORS).map(([code, def]) => [code, def.status])))
})

const designUrl = new URL('../../shared/DESIGN.md', import.meta.url)
const hasDesign = existsSync(designUrl)

t.test('DESIGN.md names no code the gateway lacks', { skip: hasDesign ? false : 'shared/DESIGN.md is not beside this checkout' }, async t => {
  const design = readFileSync(designUrl, 'utf8')
  for (const code of new Set(design.match(/EVG_[A-Z_]+/g))) t.ok(code in ERRORS, `${code} exists`)
})

t.test('problems carry the stable code, status and title', async t => {
  t.same(problem('EVG_TOO_LARGE', 'big'), { type: 'urn:event-gateway:error:EVG_TOO_LARGE', title: ERRORS.EVG_TOO_LARGE.title, status: 413, code: 'EVG_TOO_LARGE', detail: 'big' })
  const err = new GatewayError('EVG_BROKER_UNAVAILABLE', 'down', { retryAfter: 2, extensions: { reason: 'x' } })
  t.match(err.toProblem('/v1/events'), { status: 503, code: 'EVG_BROKER_UNAVAILABLE', detail: 'down', reason: 'x', instance: '/v1/events' })
  t.equal(err.retryable, true)
  t.equal(new GatewayError('EVG_VALIDATION').message, ERRORS.EVG_VALIDATION.title)
})
