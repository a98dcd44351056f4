import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { OPENAPI_PATH } from '../../scripts/write-openapi.js'
import { TENANT, exampleOf } from '../helper.js'

// A client generated from openapi/openapi.json (openapi-typescript) types each event's data: the
// catalog example of every type type-checks as its request body and as a batch item, and a
// wrong field type, a missing tenant, another type's data or a status that does not exist do not.

const root = fileURLToPath(new URL('../../', import.meta.url))
const run = promisify(execFile)

const paths = BUILTIN_ENTRIES.map(e => `/v1/events/${e.type}`)
const literal = (value: unknown) => JSON.stringify(value)

/** The example with its first string or number field given the other type. */
function wrongField (type: string): Record<string, unknown> {
  const example = exampleOf(type)
  const [field, value] = Object.entries(example).find(([, v]) => typeof v === 'string' || typeof v === 'number') ?? []
  if (field === undefined) throw new Error(`${type}: no string or number field to get wrong`)
  return { ...example, [field]: typeof value === 'string' ? 42 : '42' }
}

const preamble = `import type { components, paths } from './schema.js'

type PublishPath = Extract<keyof paths, \`/v1/events/\${string}\`>
type Body<P extends PublishPath> = paths[P]['post']['requestBody']['content']['application/json']
type Headers<P extends PublishPath> = paths[P]['post']['parameters']['header']
type Accepted<P extends PublishPath> = paths[P]['post']['responses'][202]['content']['application/json']

/** A client call as a generated client makes it: the path picks the body, headers and answer types. */
declare function publish<P extends PublishPath> (path: P, body: Body<P>, headers: Headers<P>): Promise<Accepted<P>>
const headers = { 'x-tenant-id': '${TENANT}' }
`

/** The request body type of a publish path, spelled out through the generated `paths`. */
const bodyType = (path: string) => `paths['${path}']['post']['requestBody']['content']['application/json']`

const good = `${preamble}
export async function publishEach (): Promise<void> {
${paths.map((path, i) => `  const body${i}: ${bodyType(path)} = ${literal(exampleOf(path.slice(11)))}
  const status${i}: 'published' | 'queued' = (await publish('${path}', body${i}, headers)).status`).join('\n')}
}

export const batch: components['schemas']['BatchRequest'] = {
  events: [
${BUILTIN_ENTRIES.map(e => `    { type: '${e.type}', data: ${literal(exampleOf(e.type))} },`).join('\n')}
  ]
}
export const code: components['schemas']['Problem']['code'] = 'EVG_BAD_CONTEXT'
export const queued: Accepted<'/v1/events/call.ended'>['status'] = 'queued'
`

// One refusal per line, each marked: tsc must report an error on every marked line, and nowhere else.
const surveyData = literal(exampleOf('survey.completed'))
const bad = `${preamble}
${paths.map((path, i) => `export const wrong${i}: Body<'${path}'> = ${literal(wrongField(path.slice(11)))} // refused`).join('\n')}
export const noTenant = publish('/v1/events/call.ended', ${literal(exampleOf('call.ended'))}, {}) // refused
export const otherData: components['schemas']['BatchItem'] = { type: 'call.ended', data: ${surveyData} } // refused
export const delivered: Accepted<'/v1/events/call.ended'>['status'] = 'delivered' // refused
`

t.test('a client generated with openapi-typescript types every event type\'s body, and refuses wrong ones', async t => {
  const dir = t.testdir({
    'tsconfig.json': JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        module: 'esnext',
        moduleResolution: 'bundler',
        types: [],
        skipLibCheck: false
      },
      files: ['good.ts', 'bad.ts']
    })
  })
  writeFileSync(join(dir, 'good.ts'), good)
  writeFileSync(join(dir, 'bad.ts'), bad)
  await run(
    join(root, 'node_modules/.bin/openapi-typescript'),
    [fileURLToPath(OPENAPI_PATH), '--output', join(dir, 'schema.d.ts')],
    { cwd: root }
  )

  const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir })
    .then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  const errors = [...tsc.matchAll(/^(\w+\.ts)\((\d+),\d+\): error (TS\d+: .*)$/gm)]
    .map(([, file, line, message]) => ({ file, line: Number(line), message }))
  t.same(errors.filter(e => e.file !== 'bad.ts'), [], 'every example type-checks as its body, and the batch of them')

  const marked = bad.split('\n').flatMap((line, i) => line.endsWith('// refused') ? [i + 1] : [])
  t.equal(marked.length, paths.length + 3)
  const lines = new Set(errors.filter(e => e.file === 'bad.ts').map(e => e.line))
  for (const line of marked) t.ok(lines.has(line), `refused: ${bad.split('\n')[line - 1]?.slice(0, 90)}`)
  t.same([...lines].filter(line => !marked.includes(line)), [], 'no error elsewhere')
})
