// npm run bench: the gateway next to what a user would compare it with, in one run on this
// machine, against the same local RabbitMQ. Every load generator runs in its own process.
// Writes the table to docs/benchmarks.md. Not a test: nothing here asserts.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { cpus, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import amqplib from 'amqplib'
import { declareTopology } from '../src/brokers/rabbitmq/topology.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const FIXED_SECONDS = Number(process.env.BENCH_FIXED_SECONDS ?? 30)
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'
const MGMT = 'http://127.0.0.1:15672'
const EXCHANGE = 'evg-bench'
const QUEUE = 'evg-bench.q'
const TENANT = '7c9e6679-7425-40de-944b-e07fc1f90ae7'
const root = new URL('..', import.meta.url).pathname
const work = mkdtempSync(join(tmpdir(), 'evg-bench-'))
const bin = (name: string) => join(root, 'node_modules/.bin', name)
// The gateway runs exactly as `npm start` runs it (node flags included), minus npm itself.
const startArgs = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').slice(1)

interface Row { leg: string, what: string, rate: number, p50: number, p90: number, p99: number, non2xx: number, rssMb?: number, unit?: string }
const rows: Row[] = []
const notes: string[] = []

// ~1 KB call.ended payloads, as a single event and as a batch of 100.
const payload = { call_id: 'call-7f3a9c', duration: 180, outcome: 'completed', transcript: 'x'.repeat(920) }
const single = join(work, 'single.json')
writeFileSync(single, JSON.stringify(payload))
const batchBody = join(work, 'batch.json')
writeFileSync(batchBody, JSON.stringify({ events: Array.from({ length: 100 }, () => ({ type: 'call.ended', data: payload })) }))
const mgmtBody = join(work, 'mgmt.json')
writeFileSync(mgmtBody, JSON.stringify({ properties: { delivery_mode: 2, content_type: 'application/cloudevents+json' }, routing_key: QUEUE, payload: JSON.stringify(payload), payload_encoding: 'string' }))

const log = (s: string) => process.stderr.write(`${s}\n`)

async function topology (): Promise<void> {
  const conn = await amqplib.connect(AMQP_URL)
  await declareTopology(conn, { exchange: EXCHANGE, alternateExchange: `${EXCHANGE}.unrouted` })
  const ch = await conn.createChannel()
  await ch.assertQueue(QUEUE, { durable: true })
  await ch.bindQueue(QUEUE, EXCHANGE, '#')
  await conn.close()
}

async function purge (): Promise<void> {
  const conn = await amqplib.connect(AMQP_URL)
  const ch = await conn.createChannel()
  await ch.purgeQueue(QUEUE)
  await ch.purgeQueue(`${EXCHANGE}.unrouted`)
  await conn.close()
  await new Promise(resolve => setTimeout(resolve, 2000)) // let RabbitMQ settle after the purge
}

function peakRssMb (pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : undefined
}

async function waitHttp (url: string, init: RequestInit = {}, seconds = 60): Promise<boolean> {
  const until = Date.now() + seconds * 1000
  while (Date.now() < until) {
    try {
      const res = await fetch(url, init)
      if (res.ok) return true
    } catch {
      // not listening yet
    }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  return false
}

function start (args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

function runJson (cmd: string, args: string[]): Record<string, unknown> {
  const out = execFileSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'ignore'] })
  return JSON.parse(out.trim().split('\n').filter(l => l.startsWith('{')).at(-1) as string)
}

const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 3)

/** A warm-up run (JIT, connection pools), then the measured run. */
function autocannon (url: string, opts: { connections: number, body: string, headers?: string[] }) {
  const args = ['--json', '-c', String(opts.connections), '-m', 'POST', '-i', opts.body, '-H', 'content-type: application/json']
  for (const h of opts.headers ?? []) args.push('-H', h)
  if (WARMUP_SECONDS > 0) runJson(bin('autocannon'), [...args, '-d', String(WARMUP_SECONDS), url])
  args.push('-d', String(SECONDS))
  const r = runJson(bin('autocannon'), [...args, url]) as { requests: { average: number }, latency: { p50: number, p90: number, p99: number }, non2xx: number, errors: number, timeouts: number }
  return { rate: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, non2xx: r.non2xx + r.errors + r.timeouts }
}

async function gatewayLeg (leg: string, what: string, env: Record<string, string>, load: () => Omit<Row, 'leg' | 'what'>): Promise<Row> {
  await purge()
  const port = '3700'
  const child = start(startArgs, { PORT: port, HOST: '127.0.0.1', DATA_DIR: mkdtempSync(join(work, 'data-')), AMQP_URL, AMQP_EXCHANGE: EXCHANGE, LOG_LEVEL: 'info', ...env })
  if (!await waitHttp(`http://127.0.0.1:${port}/health/ready`)) throw new Error(`${leg}: gateway did not become ready`)
  log(`${leg}: ${what}`)
  const result = load()
  const row = { leg, what, ...result, rssMb: peakRssMb(child.pid) }
  await stop(child)
  return row
}

const gwUrl = (path: string) => `http://127.0.0.1:3700${path}`
const tenant = [`x-tenant-id: ${TENANT}`]

async function main (): Promise<void> {
  execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' })
  await topology()

  // 1-3: the gateway
  rows.push(await gatewayLeg('1', 'gateway, BROKER=rabbitmq, single event (64 connections)', { BROKER: 'rabbitmq' },
    () => autocannon(gwUrl('/v1/events/call.ended'), { connections: 64, body: single, headers: tenant })))
  rows.push(await gatewayLeg('2', 'gateway, BROKER=rabbitmq, batch of 100 (8 connections)', { BROKER: 'rabbitmq' }, () => {
    const r = autocannon(gwUrl('/v1/events'), { connections: 8, body: batchBody, headers: tenant })
    return { ...r, rate: r.rate * 100, unit: 'events/s (requests × 100); latency per request' }
  }))
  rows.push(await gatewayLeg('3', 'gateway, BROKER=local, single event (64 connections)', { BROKER: 'local' },
    () => autocannon(gwUrl('/v1/events/call.ended'), { connections: 64, body: single, headers: tenant })))

  // 4: RabbitMQ's own HTTP publish API
  await purge()
  const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`
  let mgmtUp = await waitHttp(`${MGMT}/api/overview`, { headers: { authorization: auth } }, 2)
  if (!mgmtUp) {
    try {
      execFileSync('rabbitmq-plugins', ['enable', 'rabbitmq_management'], { stdio: 'ignore' })
      mgmtUp = await waitHttp(`${MGMT}/api/overview`, { headers: { authorization: auth } }, 60)
    } catch {
      // reported below as a skipped leg
    }
  }
  if (mgmtUp) {
    log('4: RabbitMQ management HTTP API publish')
    rows.push({ leg: '4', what: 'RabbitMQ HTTP API, POST /api/exchanges/%2F/amq.default/publish (64 connections)', ...autocannon(`${MGMT}/api/exchanges/%2F/amq.default/publish`, { connections: 64, body: mgmtBody, headers: [`authorization: ${auth}`] }) })
  } else {
    notes.push('Leg 4 skipped: the RabbitMQ management plugin could not be enabled (rabbitmq-plugins enable rabbitmq_management).')
    log(notes.at(-1) as string)
  }

  // 5: raw amqplib confirms at the same depths
  for (const [leg, inflight] of [['5a', 64], ['5b', 800]] as const) {
    await purge()
    log(`${leg}: raw amqplib, ${inflight} in flight`)
    const r = runJson(process.execPath, ['--import', 'tsx', 'bench/amqp-confirms.ts', '--url', AMQP_URL, '--exchange', EXCHANGE, '--inflight', String(inflight), '--seconds', String(SECONDS), '--warmup', String(WARMUP_SECONDS), '--body', single]) as { rate: number, p50: number, p90: number, p99: number }
    rows.push({ leg, what: `raw amqplib, confirms, persistent + mandatory, ${inflight} in flight`, rate: r.rate, p50: r.p50, p90: r.p90, p99: r.p99, non2xx: 0 })
  }

  // 6: the HTTP stack's ceiling
  {
    const child = start(['--import', 'tsx', 'bench/bare-fastify.ts'], { PORT: '3600' })
    await waitHttp('http://127.0.0.1:3600/nothing').catch(() => false)
    await new Promise(resolve => setTimeout(resolve, 1500))
    log('6: bare Fastify, validate and 202')
    rows.push({ leg: '6', what: 'bare Fastify route, same schema validation, 202 (64 connections)', ...autocannon('http://127.0.0.1:3600/v1/events/call.ended', { connections: 64, body: single }), rssMb: peakRssMb(child.pid) })
    await stop(child)
  }

  // 7: fixed rate, added latency
  rows.push(await gatewayLeg('7a', `gateway, BROKER=rabbitmq, fixed 1000 req/s for ${FIXED_SECONDS} s`, { BROKER: 'rabbitmq' }, () => {
    runJson(process.execPath, ['--import', 'tsx', 'bench/fixed-rate.ts', '--url', gwUrl('/v1/events/call.ended'), '--rate', '1000', '--seconds', String(WARMUP_SECONDS), '--body', single, '--header', `x-tenant-id: ${TENANT}`])
    const r = runJson(process.execPath, ['--import', 'tsx', 'bench/fixed-rate.ts', '--url', gwUrl('/v1/events/call.ended'), '--rate', '1000', '--seconds', String(FIXED_SECONDS), '--body', single, '--header', `x-tenant-id: ${TENANT}`]) as { rate: number, p50: number, p90: number, p99: number, non2xx: number, errors: number }
    return { rate: r.rate, p50: r.p50, p90: r.p90, p99: r.p99, non2xx: r.non2xx + r.errors }
  }))
  await purge()
  log(`7b: raw amqplib publish-and-confirm, fixed 1000 msg/s for ${FIXED_SECONDS} s`)
  const direct = runJson(process.execPath, ['--import', 'tsx', 'bench/amqp-confirms.ts', '--url', AMQP_URL, '--exchange', EXCHANGE, '--rate', '1000', '--seconds', String(FIXED_SECONDS), '--warmup', String(WARMUP_SECONDS), '--body', single]) as { rate: number, p50: number, p90: number, p99: number }
  rows.push({ leg: '7b', what: `raw amqplib publish-and-confirm, fixed 1000 msg/s for ${FIXED_SECONDS} s`, rate: direct.rate, p50: direct.p50, p90: direct.p90, p99: direct.p99, non2xx: 0 })
  await purge()

  report()
}

function report (): void {
  const get = (leg: string) => rows.find(r => r.leg === leg)
  const ratio = (a?: Row, b?: Row) => (a && b ? a.rate / b.rate : undefined)
  const fmt = (n: number | undefined, d = 0) => (n === undefined ? '–' : n.toFixed(d))
  const gatewayRows = rows.filter(r => ['1', '2', '3', '7a'].includes(r.leg))
  const added90 = get('7a') && get('7b') ? (get('7a') as Row).p90 - (get('7b') as Row).p90 : undefined
  const added99 = get('7a') && get('7b') ? (get('7a') as Row).p99 - (get('7b') as Row).p99 : undefined
  const goals: [string, string, boolean | undefined][] = [
    ['gateway single ≥ 8× RabbitMQ HTTP API', fmt(ratio(get('1'), get('4')), 2) + '×', ratio(get('1'), get('4')) === undefined ? undefined : (ratio(get('1'), get('4')) as number) >= 8],
    ['gateway single ≥ 0.8× raw amqplib (64 in flight)', fmt(ratio(get('1'), get('5a')), 2) + '×', (ratio(get('1'), get('5a')) ?? 0) >= 0.8],
    ['gateway batch ≥ 0.8× raw amqplib (800 in flight)', fmt(ratio(get('2'), get('5b')), 2) + '×', (ratio(get('2'), get('5b')) ?? 0) >= 0.8],
    ['gateway local ≥ 0.5× bare Fastify', fmt(ratio(get('3'), get('6')), 2) + '×', (ratio(get('3'), get('6')) ?? 0) >= 0.5],
    ['added latency ≤ +0.4 ms p90', `${fmt(added90, 2)} ms`, added90 === undefined ? undefined : added90 <= 0.4],
    ['added latency ≤ +1.0 ms p99', `${fmt(added99, 2)} ms`, added99 === undefined ? undefined : added99 <= 1.0],
    ['no non-2xx under load (gateway legs)', String(gatewayRows.reduce((s, r) => s + r.non2xx, 0)), gatewayRows.every(r => r.non2xx === 0)],
    ['gateway peak RSS < 200 MB', `${fmt(Math.max(...gatewayRows.map(r => r.rssMb ?? 0)))} MB`, gatewayRows.every(r => (r.rssMb ?? 0) < 200)]
  ]
  const rabbit = (() => { try { return /RabbitMQ version: (\S+)/.exec(execFileSync('rabbitmqctl', ['status'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1] ?? '?' } catch { return '?' } })()
  const table = [
    '| leg | what | events/s | p50 ms | p90 ms | p99 ms | non-2xx | peak RSS MB |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(r => `| ${r.leg} | ${r.what}${r.unit ? ` (${r.unit})` : ''} | ${fmt(r.rate)} | ${fmt(r.p50, 2)} | ${fmt(r.p90, 2)} | ${fmt(r.p99, 2)} | ${r.non2xx} | ${fmt(r.rssMb)} |`)
  ].join('\n')
  const goalTable = ['| goal | measured | met |', '|---|---:|:---:|', ...goals.map(([g, m, ok]) => `| ${g} | ${m} | ${ok === undefined ? 'n/a' : ok ? 'yes' : 'no'} |`)].join('\n')
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; RabbitMQ ${rabbit} on the same machine`
  const md = `# Benchmarks

Measured by \`npm run bench\` (${new Date().toISOString().slice(0, 10)}); ${SECONDS} s per throughput leg, ${FIXED_SECONDS} s for the fixed-rate leg.
Machine: ${machine}. Load generators (autocannon, the fixed-rate client, the amqplib publisher)
each run in their own process on the same two cores as the gateway and RabbitMQ, so every leg
shares the machine the same way. Payload: a ~1 KB \`call.ended\` event. RabbitMQ: durable topic
exchange \`${EXCHANGE}\` bound to durable queue \`${QUEUE}\`, persistent messages, purged between legs.
The gateway runs as \`npm start\` runs it (\`node ${startArgs.join(' ')}\`), \`LOG_LEVEL=info\` (one access line per request).

${table}

${goalTable}
${notes.length > 0 ? `\n${notes.map(n => `- ${n}`).join('\n')}\n` : ''}
Latency for legs 1-6 comes from autocannon (1 ms resolution); legs 7a/7b are measured with
microsecond timers (\`bench/fixed-rate.ts\`, \`bench/amqp-confirms.ts\`): added latency = 7a − 7b.
`
  mkdirSync(join(root, 'docs'), { recursive: true })
  writeFileSync(join(root, 'docs/benchmarks.md'), md)
  console.log(`\n${table}\n\n${goalTable}\n\nwritten to docs/benchmarks.md`)
}

try {
  await main()
} finally {
  rmSync(work, { recursive: true, force: true })
}
