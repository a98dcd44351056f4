// The server legs of `npm run bench`, in table order. A leg is a server to start and the load to
// put on it; adding one (say, keyed single events: `keyHeader: 'idempotency-key'`) is one entry.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { get } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { PROFILES } from '../src/envelopes/index.js'
import { gatewayArgs, startServer, type Server } from './servers.js'

export interface LegContext {
  root: string
  work: string
  amqpUrl: string
  exchange: string
  tenant: string
  /** Paths of the request bodies: one ~1 KB call.ended, and a batch of 100 of them. */
  single: string
  batch: string
}

export interface Leg {
  id: string
  what: string
  start: (ctx: LegContext) => Promise<Server | undefined>
  path: string
  body: (ctx: LegContext) => string
  headers: (ctx: LegContext) => string[]
  /** Each request gets its own value of this header (an Idempotency-Key). */
  keyHeader?: string
  /** Closed loop through bench/keyed.ts, keyed or not (issue 10's legs and their unkeyed twins). */
  keyedClient?: boolean
  eventsPerRequest: number
  /** Requests per second offered in the CPU runs. */
  rate: number
  /** Connections of the closed-loop run; none: no closed-loop run. */
  connections?: number
  /** RabbitMQ's bench queue is purged around it. */
  rabbitmq?: boolean
  /** The AWS stand-in whose sending calls are counted around each run (AWS calls per 1,000 events). */
  awsCalls?: AwsService
}

export type AwsService = 'sqs' | 'eventbridge'

/** Single events at this rate; batches at the same event rate. */
const RATE = Number(process.env.BENCH_RATE ?? 1500)
/** The AWS legs' rate: the same by default (issue 24's goals are at 1,500 req/s). */
const AWS_RATE = Number(process.env.BENCH_AWS_RATE ?? RATE)
const PORT = Number(process.env.BENCH_PORT ?? 3700)
/** The keyed legs' Redis: a database of the bench's own, emptied before each of them. */
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12'
/** The spool leg's PostgreSQL: a schema of the bench's own, made afresh before the leg. */
export const BENCH_POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
async function freshSchema (): Promise<string> {
  const client = new pg.Client(BENCH_POSTGRES_URL)
  await client.connect()
  await client.query('DROP SCHEMA IF EXISTS evg_bench CASCADE; CREATE SCHEMA evg_bench')
  await client.end()
  return `${BENCH_POSTGRES_URL}?options=${encodeURIComponent('-c search_path=evg_bench')}`
}
let n = 0
const gcFile = (ctx: LegContext) => join(ctx.work, `gc-${++n}.json`)

/** The gateway as `npm start` runs it, on a fresh data directory. */
function gateway (env: (ctx: LegContext) => Record<string, string> | Promise<Record<string, string>>) {
  return async (ctx: LegContext) => startServer(gatewayArgs(), {
    PORT: String(PORT),
    HOST: '127.0.0.1',
    DATA_DIR: mkdtempSync(join(ctx.work, 'data-')),
    AMQP_URL: ctx.amqpUrl,
    AMQP_EXCHANGE: ctx.exchange,
    LOG_LEVEL: 'info',
    SHUTDOWN_DRAIN_SECONDS: '0',
    ...await env(ctx)
  }, `http://127.0.0.1:${PORT}`, '/health/ready', gcFile(ctx))
}

/** fauxqs and the fake PutEvents endpoint, in their own process, started once and killed at exit. */
interface AwsFakes {
  sqsEndpoint: string
  queueUrl: string
  eventBridgeEndpoint: string
  /** The same stand-ins, answering after an AWS-like round trip (`roundTripMs`). */
  sqsFarEndpoint: string
  eventBridgeFarEndpoint: string
  roundTripMs: number
}
let aws: Promise<AwsFakes> | undefined
function awsFakes (ctx: LegContext) {
  aws ??= new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/aws-fakes.ts'], {
      cwd: ctx.root,
      stdio: ['ignore', 'pipe', 'inherit']
    })
    process.once('exit', () => child.kill())
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split('\n').find(l => l.startsWith('{'))
      if (line === undefined) return
      resolve(JSON.parse(line))
      // Served until the bench exits, without keeping it alive.
      child.stdout.destroy()
      child.unref()
    })
    child.once('exit', code => reject(new Error(`aws-fakes exited (${code})`)))
  })
  return aws
}

/** The calls that sent events the AWS stand-ins have received so far. */
export async function awsCallCounts (ctx: LegContext): Promise<Record<AwsService, number>> {
  const url = `${(await awsFakes(ctx)).sqsEndpoint}/__counts`
  // A connection of its own each time: a kept-alive one may be closed by the server as it is reused.
  return await new Promise((resolve, reject) => {
    get(url, { agent: false }, res => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => { resolve(JSON.parse(body) as Record<AwsService, number>) })
    }).on('error', reject)
  })
}

/** The gateway sending to SQS through fauxqs, with these settings besides; `far`: answered after an AWS-like round trip. */
function sqsGateway (env: Record<string, string> = {}, far = false) {
  return gateway(async ctx => {
    const fakes = await awsFakes(ctx)
    const endpoint = far ? fakes.sqsFarEndpoint : fakes.sqsEndpoint
    return { BROKER: 'sqs', SQS_QUEUE_URL: fakes.queueUrl, AWS_ENDPOINT_URL_SQS: endpoint, ...AWS_ENV, ...env }
  })
}

/** The gateway sending to the PutEvents stand-in, with these settings besides; `far` as for SQS. */
function eventBridgeGateway (env: Record<string, string> = {}, far = false) {
  return gateway(async ctx => {
    const fakes = await awsFakes(ctx)
    const endpoint = far ? fakes.eventBridgeFarEndpoint : fakes.eventBridgeEndpoint
    return { BROKER: 'eventbridge', AWS_ENDPOINT_URL_EVENTBRIDGE: endpoint, ...AWS_ENV, ...env }
  })
}
/**
 * librdkafka's mock cluster (test/integration/kafka-mock.py), in its own process, started once and
 * ended at exit: three brokers on 127.0.0.1, the bench's topic made with 4 partitions.
 */
let kafka: Promise<string> | undefined
function kafkaMock (ctx: LegContext) {
  kafka ??= new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', ['test/integration/kafka-mock.py', '3'], { cwd: ctx.root, stdio: ['pipe', 'pipe', 'inherit'] })
    process.once('exit', () => child.kill())
    let out = ''
    const started = (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split('\n').find(l => l.startsWith('{"bootstraps"'))
      if (line === undefined) return
      const { bootstraps } = JSON.parse(line) as { bootstraps: string }
      child.stdin.write(`${JSON.stringify({ op: 'create_topic', topic: 'bench.events', partitions: 4, replication: 1 })}\n`)
      resolve(bootstraps)
      // What it prints from now on is read and dropped: kept, the text grew for the rest of the
      // bench and each chunk searched all of it (a core spinning after the last leg).
      child.stdout.off('data', started)
      child.stdout.resume()
      child.unref()
    }
    child.stdout.on('data', started)
    child.once('exit', code => reject(new Error(`kafka-mock exited (${code})`)))
  })
  return kafka
}

/** One Kafka destination for every type, the cloudevents envelope in binary mode, keyed by tenant. */
async function kafkaRoutes (ctx: LegContext): Promise<string> {
  const path = join(ctx.work, 'routes-kafka.json')
  writeFileSync(path, JSON.stringify({
    destinations: { kafka: { broker: 'kafka', brokers: await kafkaMock(ctx), topic: 'bench.events', key: '{{tenant}}' } },
    routes: [{ types: ['*'], to: ['kafka'] }]
  }))
  return path
}

const AWS_ENV = { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true' }

/**
 * A routes file with one RabbitMQ destination, as BROKER=rabbitmq makes it, whose envelope is the
 * cloudevents profile's template written out.
 */
function templateRoutes (ctx: LegContext): string {
  const path = join(ctx.work, 'routes-template.json')
  writeFileSync(path, JSON.stringify({
    destinations: {
      rabbitmq: {
        broker: 'rabbitmq',
        url: ctx.amqpUrl,
        exchange: ctx.exchange,
        envelope: PROFILES.cloudevents.template,
        contentType: PROFILES.cloudevents.contentType
      }
    },
    routes: [{ types: ['*'], to: ['rabbitmq'] }]
  }))
  return path
}

/**
 * Issue 26: a call.ended whose transcript is 1,024 characters of text (the other fields as in the
 * single body), for the protect legs.
 */
function transcriptBody (ctx: LegContext): string {
  const path = join(ctx.work, 'single-transcript-1k.json')
  const transcript = 'Customer asked for a callback tomorrow at 2pm about moving to the family plan. '.repeat(13).slice(0, 1024)
  writeFileSync(path, JSON.stringify({ call_id: 'call-7f3a9c', duration: 180, outcome: 'completed', transcript }))
  return path
}

/**
 * Issue 26: a routes file with one RabbitMQ destination (the envelope its default, cloudevents), in
 * clear, or with its call.ended transcript encrypted by a fresh key of a PROTECTION_KEYS_FILE.
 */
function protectEnv (ctx: LegContext, encrypt: boolean): Record<string, string> {
  const dir = mkdtempSync(join(ctx.work, 'protect-'))
  const routes = join(dir, 'routes.json')
  writeFileSync(routes, JSON.stringify({
    destinations: {
      rabbitmq: {
        broker: 'rabbitmq',
        url: ctx.amqpUrl,
        exchange: ctx.exchange,
        ...(encrypt ? { protect: { 'call.ended': { '/transcript': 'encrypt' } } } : {})
      }
    },
    routes: [{ types: ['*'], to: ['rabbitmq'] }]
  }))
  if (!encrypt) return { ROUTES_FILE: routes }
  const keys = join(dir, 'keys.json')
  writeFileSync(keys, JSON.stringify({ active: 'k1', keys: [{ id: 'k1', secret: randomBytes(32).toString('base64') }] }), { mode: 0o600 })
  return { ROUTES_FILE: routes, PROTECTION_KEYS_FILE: keys }
}

const singleLoad = { path: '/v1/events/call.ended', body: (ctx: LegContext) => ctx.single, eventsPerRequest: 1 }
const tenant = (ctx: LegContext) => [`x-tenant-id: ${ctx.tenant}`]

export const LEGS: Leg[] = [
  {
    id: 'fastify',
    what: 'bare Fastify route, same schema validation, 202',
    start: ctx => startServer(
      ['--import', 'tsx', 'bench/bare-fastify.ts'], { PORT: '3600' }, 'http://127.0.0.1:3600', '/nothing', gcFile(ctx)
    ),
    ...singleLoad,
    headers: () => [],
    rate: RATE,
    connections: 64
  },
  {
    id: 'bridge',
    what: 'hand-written bridge: Fastify + amqplib confirm channel, 202 on confirm',
    start: ctx => startServer(
      ['--import', 'tsx', 'bench/bridge.ts'],
      { PORT: '3601', AMQP_URL: ctx.amqpUrl, AMQP_EXCHANGE: ctx.exchange },
      'http://127.0.0.1:3601',
      '/nothing',
      gcFile(ctx)
    ),
    ...singleLoad,
    headers: () => [],
    rate: RATE,
    connections: 64,
    rabbitmq: true
  },
  // Issue 24: the local store's fair peer, the same promise (on disk before 202) written by hand.
  {
    id: 'durable-store',
    what: 'hand-written durable store: Fastify + better-sqlite3 (WAL, synchronous=FULL), one insert per request, 202',
    start: ctx => startServer(
      ['--import', 'tsx', 'bench/durable-store.ts'],
      { PORT: '3602', DATA_DIR: mkdtempSync(join(ctx.work, 'durable-')) },
      'http://127.0.0.1:3602',
      '/nothing',
      gcFile(ctx)
    ),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64
  },
  {
    id: 'local',
    what: 'gateway, BROKER=local, single event',
    start: gateway(() => ({ BROKER: 'local' })),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64
  },
  {
    id: 'rabbitmq',
    what: 'gateway, BROKER=rabbitmq, single event',
    start: gateway(() => ({ BROKER: 'rabbitmq' })),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64,
    rabbitmq: true
  },
  // Issue 20: an envelope declared as a template in ROUTES_FILE, writing what the built-in
  // cloudevents profile writes, byte for byte: the leg above with a compiled template of the
  // routes file's own instead of the profile's.
  {
    id: 'rabbitmq-template',
    what: 'gateway, RabbitMQ, single event, the CloudEvents envelope as a template of ROUTES_FILE',
    start: gateway(ctx => ({ ROUTES_FILE: templateRoutes(ctx) })),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64,
    rabbitmq: true
  },
  // Issue 26: what encrypting a 1 KB transcript costs per event, against the same event in clear:
  // the same routes file's RabbitMQ destination, with and without its protect rule.
  ...(['clear', 'encrypt'] as const).map(mode => ({
    id: `protect-${mode}`,
    what: 'gateway, RabbitMQ (ROUTES_FILE), single event with a 1,024-character transcript, ' +
      (mode === 'encrypt' ? 'encrypted (protect: AES-256-GCM, PROTECTION_KEYS_FILE)' : 'in clear (no protect)'),
    start: gateway(ctx => protectEnv(ctx, mode === 'encrypt')),
    ...singleLoad,
    body: transcriptBody,
    headers: tenant,
    rate: RATE,
    connections: 64,
    rabbitmq: true
  })),
  // Issue 10: keyed single events cost at most a fifth of the throughput, on either state store.
  // Each keyed leg has an unkeyed twin: the same server and the same load generator.
  ...(['sqlite', 'redis'] as const).flatMap(store => (['unkeyed', 'keyed'] as const).map(keyed => ({
    id: `${keyed}-${store}`,
    what: `gateway, BROKER=rabbitmq, single event, ${keyed === 'keyed' ? 'a new Idempotency-Key each' : 'no Idempotency-Key'}, ` +
      `state in ${store === 'redis' ? 'Redis (STATE_URL)' : 'SQLite (embedded)'}`,
    start: gateway(() => ({ BROKER: 'rabbitmq', ...(store === 'redis' ? { STATE_URL: BENCH_REDIS_URL } : {}) })),
    ...singleLoad,
    headers: tenant,
    ...(keyed === 'keyed' ? { keyHeader: 'idempotency-key' } : {}),
    keyedClient: true,
    rate: RATE,
    connections: 64,
    rabbitmq: true
  }))),
  // Issue 11: spool mode's accept rate, against the local broker's (both an fsync'd SQLite
  // commit per group of requests); the relay publishes to RabbitMQ in the same process meanwhile.
  {
    id: 'spool-sqlite',
    what: 'gateway, BROKER=rabbitmq, DELIVERY_MODE=spool, outbox in SQLite (embedded), single event',
    start: gateway(() => ({ BROKER: 'rabbitmq', DELIVERY_MODE: 'spool' })),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64,
    rabbitmq: true
  },
  {
    id: 'spool-postgres',
    what: 'gateway, BROKER=rabbitmq, DELIVERY_MODE=spool, outbox in PostgreSQL (SPOOL_URL), single event',
    start: gateway(async () => ({ BROKER: 'rabbitmq', DELIVERY_MODE: 'spool', SPOOL_URL: await freshSchema() })),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64,
    rabbitmq: true
  },
  {
    id: 'batch',
    what: 'gateway, BROKER=rabbitmq, batch of 100 (per event)',
    start: gateway(() => ({ BROKER: 'rabbitmq' })),
    path: '/v1/events',
    body: ctx => ctx.batch,
    headers: tenant,
    eventsPerRequest: 100,
    rate: RATE / 100,
    connections: 8,
    rabbitmq: true
  },
  {
    id: 'sqs',
    what: 'gateway, BROKER=sqs (fauxqs), single event',
    start: sqsGateway(),
    ...singleLoad,
    headers: tenant,
    rate: AWS_RATE,
    awsCalls: 'sqs'
  },
  {
    id: 'sqs-linger',
    what: 'gateway, BROKER=sqs (fauxqs), single event, AWS_BATCH_LINGER_MS=5',
    start: sqsGateway({ AWS_BATCH_LINGER_MS: '5' }),
    ...singleLoad,
    headers: tenant,
    rate: AWS_RATE,
    awsCalls: 'sqs'
  },
  {
    id: 'kafka',
    what: 'gateway, Kafka (librdkafka\'s mock cluster), single event',
    start: gateway(async ctx => ({ ROUTES_FILE: await kafkaRoutes(ctx) })),
    ...singleLoad,
    headers: tenant,
    rate: RATE,
    connections: 64
  },
  {
    id: 'eventbridge',
    what: 'gateway, BROKER=eventbridge (local PutEvents endpoint), single event',
    start: eventBridgeGateway(),
    ...singleLoad,
    headers: tenant,
    rate: AWS_RATE,
    awsCalls: 'eventbridge'
  },
  {
    id: 'eventbridge-linger',
    what: 'gateway, BROKER=eventbridge (local PutEvents endpoint), single event, AWS_BATCH_LINGER_MS=5',
    start: eventBridgeGateway({ AWS_BATCH_LINGER_MS: '5' }),
    ...singleLoad,
    headers: tenant,
    rate: AWS_RATE,
    awsCalls: 'eventbridge'
  },
  // The stand-ins answer in 1-2 ms; AWS, from within its region, in 10-30: calls then fill without a linger.
  {
    id: 'sqs-far',
    what: 'gateway, BROKER=sqs (fauxqs answering after 15 ms, as AWS does), single event, defaults',
    start: sqsGateway({}, true),
    ...singleLoad,
    headers: tenant,
    rate: AWS_RATE,
    awsCalls: 'sqs'
  },
  {
    id: 'eventbridge-far',
    what: 'gateway, BROKER=eventbridge (PutEvents endpoint answering after 15 ms, as AWS does), single event, defaults',
    start: eventBridgeGateway({}, true),
    ...singleLoad,
    headers: tenant,
    rate: AWS_RATE,
    awsCalls: 'eventbridge'
  }
]

/**
 * Issue 24: a lone event is not held back. SQS at a low fixed rate, as the gateway sends it and
 * with AWS_BATCH_MAX_ENTRIES=1 (each event its own call, as before coalescing): latency and calls.
 */
export const LOW_RATE_LEGS = [
  { id: 'sqs-low', what: 'gateway, BROKER=sqs (fauxqs), single event', start: sqsGateway() },
  {
    id: 'sqs-low-linger',
    what: 'gateway, BROKER=sqs (fauxqs), single event, AWS_BATCH_LINGER_MS=5',
    start: sqsGateway({ AWS_BATCH_LINGER_MS: '5' })
  },
  {
    id: 'sqs-low-alone',
    what: 'gateway, BROKER=sqs (fauxqs), single event, AWS_BATCH_MAX_ENTRIES=1 (each event its own call)',
    start: sqsGateway({ AWS_BATCH_MAX_ENTRIES: '1' })
  }
]
