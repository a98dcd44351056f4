import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { OPENAPI_PATH } from '../../scripts/write-openapi.js'
import { TENANT, build } from '../helper.js'

// `redocly lint` with the recommended rules (redocly.yaml) finds nothing in the document: the one
// committed, and one from a gateway configured otherwise (API keys on, the mock tenant, extra types
// whose names collide), so the shaping holds beyond the default catalog.

const root = fileURLToPath(new URL('../../', import.meta.url))
const run = promisify(execFile)

async function lint (file: string): Promise<{
  totals: { errors: number, warnings: number },
  problems: { ruleId: string, message: string }[]
}> {
  const args = ['lint', file, '--config', join(root, 'redocly.yaml'), '--format', 'json']
  const { stdout } = await run(join(root, 'node_modules/.bin/redocly'), args, {
    cwd: root,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }
  }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' })) // it exits 1 on errors: report them
  return JSON.parse(stdout)
}

t.test('openapi/openapi.json: no errors, no warnings', async t => {
  const result = await lint(fileURLToPath(OPENAPI_PATH))
  t.same(result.problems.map(p => `${p.ruleId}: ${p.message}`), [])
  t.same(result.totals, { errors: 0, warnings: 0, ignored: 0 })
})

t.test('a gateway with API keys, the mock tenant and colliding type names serves a clean document too', async t => {
  const sha256 = createHash('sha256').update('a-key').digest('hex')
  const external = (type: string) => JSON.stringify({
    type,
    description: `An extra type, ${type}`,
    domain: 'catalog', // the name of a route tag: the two share it
    schema: {
      type: 'object',
      required: ['id'],
      properties: { id: { type: 'string' } },
      additionalProperties: false,
      examples: [{ id: 'x-1' }]
    }
  })
  const dir = t.testdir({
    'keys.json': JSON.stringify({ keys: [{ name: 'all', sha256, tenants: ['*'], eventTypes: ['*'] }] }),
    types: { 'a.json': external('call_ended'), 'b.json': external('problem') }
  })
  const { app } = await build(t, {
    API_KEYS_FILE: join(dir, 'keys.json'),
    ALLOW_MOCK_CONTEXT: 'true',
    MOCK_TENANT_ID: TENANT,
    EVENT_CATALOG_DIR: join(dir, 'types')
  })
  const doc = (await app.inject('/openapi.json')).json()
  t.ok(
    doc.components.schemas['call.endedData'] && doc.components.schemas['call_endedData'] && doc.components.schemas.ProblemData,
    'colliding names kept apart'
  )
  const file = join(dir, 'openapi.json')
  writeFileSync(file, JSON.stringify(doc))
  const result = await lint(file)
  t.same(result.problems.map(p => `${p.ruleId}: ${p.message}`), [])
  t.equal(result.totals.errors + result.totals.warnings, 0)
})
