import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/index.js'

const run = promisify(execFile)

const hasCompose = await run('docker-compose', ['version']).then(() => true, () => false)
// CI installs docker-compose, so there its absence is a failure, not a skip.
const skip = !hasCompose && !process.env.CI ? 'docker-compose not installed (apt-get install docker-compose)' : false

interface Service {
  profiles?: string[]
  command?: string[]
  environment?: Record<string, string>
  depends_on?: Record<string, { condition: string }>
}

/**
 * `docker-compose --profile NAME config` in an environment of our own (the variables the file
 * passes through come from the caller's shell otherwise): the services that profile starts.
 * Compose v1 prints every service with its profiles, v2 only the active ones: we filter as
 * `up` does.
 */
async function profile (name: string, env: Record<string, string> = {}): Promise<Map<string, Service>> {
  const { stdout } = await run(
    'docker-compose',
    ['-f', 'docker-compose.yml', '--profile', name, 'config'],
    { env: { PATH: process.env.PATH ?? '', ...env } }
  )
  const services = (parse(stdout) as { services: Record<string, Service> }).services
  return new Map(Object.entries(services).filter(([, s]) => s.profiles === undefined || s.profiles.includes(name)))
}

const PROFILES: Record<string, { services: string[], broker: string }> = {
  local: { services: ['gateway-local'], broker: 'local' },
  rabbitmq: { services: ['gateway-rabbitmq', 'provision-rabbitmq', 'rabbitmq'], broker: 'rabbitmq' },
  aws: { services: ['gateway-aws', 'localstack', 'provision-aws'], broker: 'sqs' }
}

for (const [name, expected] of Object.entries(PROFILES)) {
  t.test(`docker-compose --profile ${name}: its services only, and what the gateway waits for is in it`, { skip }, async t => {
    const services = await profile(name)
    t.same([...services.keys()].sort(), expected.services)
    for (const [service, spec] of services) {
      for (const dependency of Object.keys(spec.depends_on ?? {})) {
        t.ok(services.has(dependency), `${service} depends on ${dependency}, which this profile starts`)
      }
    }
    const gateway = services.get(`gateway-${name}`)
    t.equal(gateway?.environment?.BROKER, expected.broker)
    const provision = services.get(`provision-${name}`)
    if (provision === undefined) {
      t.same(gateway?.depends_on ?? {}, {}, 'the gateway waits for nothing')
      return
    }
    // The gateway starts once the broker has what it needs, declared with the gateway's own settings.
    t.same(gateway?.depends_on, { [`provision-${name}`]: { condition: 'service_completed_successfully' } })
    t.same(provision.command, ['node', 'dist/cli/provision.js'])
    for (const [key, value] of Object.entries(provision.environment ?? {})) {
      t.equal(gateway?.environment?.[key], value, `${key}: the gateway's value`)
    }
  })
}

t.test('docker-compose --profile fleet: two gateways sharing Redis in front of the provisioned RabbitMQ', { skip }, async t => {
  const services = await profile('fleet', { RATE_LIMIT_PER_TENANT: '200' })
  t.same([...services.keys()].sort(), ['gateway-fleet-1', 'gateway-fleet-2', 'provision-rabbitmq', 'rabbitmq', 'redis'])
  const ports = []
  for (const name of ['gateway-fleet-1', 'gateway-fleet-2']) {
    const gateway = services.get(name) as Service & { ports?: unknown[], volumes?: unknown[] }
    t.match(gateway.environment, { BROKER: 'rabbitmq', STATE_URL: 'redis://redis:6379/0', RATE_LIMIT_PER_TENANT: '200' }, name)
    t.same(Object.keys(gateway.depends_on ?? {}).sort(), ['provision-rabbitmq', 'redis'])
    ports.push(JSON.stringify(gateway.ports))
  }
  t.equal(new Set(ports).size, 2, 'each replica on its own host port')
})

t.test('docker-compose --profile spool: the gateway in spool mode, its outbox in the profile\'s PostgreSQL, ' +
  'in front of the provisioned RabbitMQ', { skip }, async t => {
  const services = await profile('spool')
  t.same([...services.keys()].sort(), ['gateway-spool', 'postgres', 'provision-rabbitmq', 'rabbitmq'])
  const gateway = services.get('gateway-spool') as Service
  t.match(
    gateway.environment,
    { BROKER: 'rabbitmq', DELIVERY_MODE: 'spool', SPOOL_URL: 'postgres://gateway:gateway@postgres:5432/gateway' }
  )
  t.same(gateway.depends_on, {
    'provision-rabbitmq': { condition: 'service_completed_successfully' },
    postgres: { condition: 'service_healthy' }
  })
  // The URL names the database and user the PostgreSQL service creates.
  const url = new URL(gateway.environment?.SPOOL_URL ?? '')
  t.match(
    services.get('postgres')?.environment,
    { POSTGRES_USER: url.username, POSTGRES_PASSWORD: url.password, POSTGRES_DB: url.pathname.slice(1) }
  )
  t.doesNotThrow(() => loadConfig(gateway.environment ?? {}), 'a configuration the gateway accepts')
})

t.test('docker-compose --profile aws passes SQS_QUEUE_URL and the AWS settings through ' +
  'to the gateway and the provisioning', { skip }, async t => {
  const env = {
    AWS_BROKER: 'eventbridge',
    SQS_QUEUE_URL: 'http://localstack:4566/000000000000/orders',
    EVENTBRIDGE_BUS_NAME: 'orders-bus',
    AWS_REGION: 'us-east-1'
  }
  const services = await profile('aws', env)
  for (const name of ['gateway-aws', 'provision-aws']) {
    t.match(
      services.get(name)?.environment,
      { BROKER: 'eventbridge', SQS_QUEUE_URL: env.SQS_QUEUE_URL, EVENTBRIDGE_BUS_NAME: 'orders-bus', AWS_REGION: 'us-east-1' },
      name
    )
  }
})

t.test('the Dockerfile builds in stages on Node 24, runs as non-root and has a health check', async t => {
  const text = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')
  t.same(text.match(/^FROM \S+/gm), ['FROM node:24-bookworm-slim', 'FROM node:24-bookworm-slim'])
  t.match(text, /^USER node$/m)
  t.match(text, /^HEALTHCHECK .*\n.*\/health\/ready/m)
  t.match(text, /npm ci --omit=dev/, 'the image gets production dependencies only')
  t.match(
    text,
    /^ENV .*\bHOST=0\.0\.0\.0\b/m,
    'every interface of the container: without keys the gateway would listen on its loopback only'
  )
})

t.test('the image runs the gateway as npm start does, with the heap limits in the environment', async t => {
  const text = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')
  const start = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).scripts.start as string).split(' ')
  const heap = start.filter(arg => /^--max-(old|semi)-space-size=/.test(arg))
  t.equal(heap.length, 2, 'npm start sets the old and the young space')
  t.same(text.match(/^ENV NODE_OPTIONS="?([^"\n]*)"?$/m)?.[1]?.split(' '), heap, 'the image\'s default heap limits are npm start\'s')
  const cmd = JSON.parse(text.match(/^CMD (\[.*\])$/m)?.[1] ?? 'null') as string[] | null
  // A flag on the command line would win over NODE_OPTIONS, so that `docker run -e` could not raise it.
  t.same(cmd, start.filter(arg => !heap.includes(arg)), 'the same command, without the flags')
})

t.test('a .env made from .env.example, as the README says, changes no profile: ' +
  'every service keeps its in-network addresses', { skip }, async t => {
  const dir = t.testdir({ '.env': readFileSync(new URL('../../.env.example', import.meta.url), 'utf8') })
  for (const name of ['local', 'rabbitmq', 'aws', 'fleet', 'spool']) {
    const bare = await profile(name)
    const { stdout } = await run(
      'docker-compose',
      ['-f', 'docker-compose.yml', '--env-file', `${dir}/.env`, '--profile', name, 'config'],
      { env: { PATH: process.env.PATH ?? '' } }
    )
    const withEnv = new Map(
      Object.entries(
        (parse(stdout) as { services: Record<string, Service> }).services
      ).filter(([, s]) => s.profiles === undefined || s.profiles.includes(name))
    )
    for (const [service, spec] of bare) t.same(withEnv.get(service)?.environment, spec.environment, `${name}: ${service}`)
    const gateways = [...withEnv].filter(([service]) => service.startsWith('gateway'))
    t.ok(gateways.length > 0, `${name} has a gateway`)
    for (const [service, spec] of gateways) {
      t.equal(spec.environment?.HOST, '0.0.0.0', `${name}: ${service} listens on the container's interfaces`)
    }
  }
})
