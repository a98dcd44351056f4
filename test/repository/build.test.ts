import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url).pathname

// `npm start` (and provision, tail, verify) build first; a build with nothing changed since the
// last one does nothing, so a second start is quick. TypeScript's build mode decides, by the
// sources' contents (a touched but unchanged file rebuilds nothing).

t.test('npm start builds, and a build with nothing changed is up to date and writes nothing', { timeout: 180_000 }, async t => {
  const scripts = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts
  t.match(scripts.build, /^tsc -b tsconfig\.build\.json /, 'the build is TypeScript\'s build mode')
  t.equal(scripts.prestart, 'npm run build')
  for (const cli of ['provision', 'tail', 'verify']) {
    t.match(scripts[cli], /^npm run -s build && node dist\/cli\//, `${cli} builds the same way`)
  }
  await run('npm', ['run', '-s', 'build'], { cwd: root })
  const { stdout } = await run('npx', ['tsc', '-b', 'tsconfig.build.json', '--verbose'], { cwd: root })
  t.match(stdout, /Project 'tsconfig\.build\.json' is up to date/, 'nothing to rebuild')
})
