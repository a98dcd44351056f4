import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)

const hasCompose = await run('docker-compose', ['version']).then(() => true, () => false)
// CI installs docker-compose, so there its absence is a failure, not a skip.
const skip = !hasCompose && !process.env.CI ? 'docker-compose not installed (apt-get install docker-compose)' : false

t.test('docker-compose.yml is a valid compose file', { skip }, async t => {
  const { stdout } = await run('docker-compose', ['-f', 'docker-compose.yml', 'config'])
  t.match(stdout, /gateway:/)
  t.match(stdout, /rabbitmq:3[.\d]*-management/)
  t.match(stdout, /localstack/)
})

t.test('the Dockerfile builds in stages on Node 22, runs as non-root and has a health check', async t => {
  const text = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')
  t.same(text.match(/^FROM \S+/gm), ['FROM node:22-bookworm-slim', 'FROM node:22-bookworm-slim'])
  t.match(text, /^USER node$/m)
  t.match(text, /^HEALTHCHECK .*\n.*\/health\/ready/m)
  t.match(text, /npm ci --omit=dev/, 'the image gets production dependencies only')
})

t.test('the image runs the gateway as npm start does, with the heap limit in the environment', async t => {
  const text = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')
  const start = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start as string).split(' ')
  const heap = start.find(arg => arg.startsWith('--max-old-space-size='))
  t.ok(heap, 'npm start sets the heap limit')
  t.same(text.match(/^ENV NODE_OPTIONS=(.*)$/m)?.[1], heap, 'the image\'s default heap limit is npm start\'s')
  const cmd = JSON.parse(text.match(/^CMD (\[.*\])$/m)?.[1] ?? 'null') as string[] | null
  // A flag on the command line would win over NODE_OPTIONS, so that `docker run -e` could not raise it.
  t.same(cmd, start.filter(arg => arg !== heap), 'the same command, without the flag')
})
