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

t.test('the Dockerfile builds in stages, runs as non-root and has a health check', async t => {
  const text = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')
  t.equal(text.match(/^FROM /gm)?.length, 2)
  t.match(text, /^USER node$/m)
  t.match(text, /^HEALTHCHECK .*\n.*\/health\/ready/m)
  const start = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).scripts.start as string
  t.match(text, `CMD ${JSON.stringify(start.split(' '))}`.replace(/,/g, ', '), 'the image runs the gateway as npm start does')
})
