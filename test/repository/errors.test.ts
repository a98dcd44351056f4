import t from 'tap'
import { ERRORS, GatewayError, problem } from '../../src/errors.js'
import { codes, readDoc, section, tableRows } from '../markdown.js'

t.test('the table of docs/errors.md is exactly the codes of src/errors.ts, with status and retryable', async t => {
  const rows = tableRows(section(readDoc('docs/errors.md'), '## Codes') ?? '')
  const documented = rows.map(
    ([code = '', status = '', retryable = '']) => [codes(code)[0], { status: Number(status), retryable: retryable === 'yes' }]
  )
  t.equal(documented.length, Object.keys(ERRORS).length, 'one row per code')
  t.same(
    Object.fromEntries(documented),
    Object.fromEntries(Object.entries(ERRORS).map(([code, def]) => [code, { status: def.status, retryable: def.retryable }]))
  )
})

t.test('problems carry the stable code, status and title', async t => {
  t.same(
    problem('EVG_TOO_LARGE', 'big'),
    { type: 'urn:event-gateway:error:EVG_TOO_LARGE', title: ERRORS.EVG_TOO_LARGE.title, status: 413, code: 'EVG_TOO_LARGE', detail: 'big' }
  )
  const err = new GatewayError('EVG_BROKER_UNAVAILABLE', 'down', { retryAfter: 2, extensions: { reason: 'x' } })
  t.match(err.toProblem('/v1/events'), { status: 503, code: 'EVG_BROKER_UNAVAILABLE', detail: 'down', reason: 'x', instance: '/v1/events' })
  t.equal(err.retryable, true)
  t.equal(new GatewayError('EVG_VALIDATION').message, ERRORS.EVG_VALIDATION.title)
})
