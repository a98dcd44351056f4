// Leg 5 (and the direct side of leg 7): raw amqplib publishing with confirms, persistent and
// mandatory, keeping `inflight` publishes outstanding (or at a fixed rate), for `seconds`.
// Prints one JSON line: {count, seconds, rate, p50, p90, p99} (latency in ms).
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import amqplib from 'amqplib'
import { v7 as uuidv7 } from 'uuid'
import { openLoop, percentiles } from './load.js'

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672' },
    exchange: { type: 'string', default: 'evg-bench' },
    inflight: { type: 'string', default: '64' },
    rate: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '0' },
    body: { type: 'string' }
  }
})
const body = values.body === undefined ? Buffer.alloc(1024, 'x') : readFileSync(values.body)
const conn = await amqplib.connect(values.url)
const ch = await conn.createConfirmChannel()
let latencies: number[] = []
let count = 0

const publishOne = () => new Promise<void>((resolve, reject) => {
  const start = process.hrtime.bigint()
  const options = { persistent: true, mandatory: true, contentType: 'application/cloudevents+json', messageId: uuidv7() }
  const ok = ch.publish(values.exchange, 'comms.call.ended', body, options, err => {
    if (err) return reject(err)
    latencies.push(Number(process.hrtime.bigint() - start) / 1e6)
    count++
    resolve()
  })
  void ok
})

/** A fixed rate (open loop), or `inflight` publishers each waiting for its confirm (closed loop). */
async function run (seconds: number): Promise<number> {
  if (values.rate !== undefined) return openLoop(Number(values.rate), seconds, publishOne)
  const started = Date.now()
  const end = started + seconds * 1000
  const worker = async () => { while (Date.now() < end) await publishOne() }
  await Promise.all(Array.from({ length: Number(values.inflight) }, worker))
  return (Date.now() - started) / 1000
}

// Warm up (JIT, channel), then measure from zero.
if (Number(values.warmup) > 0) await run(Number(values.warmup))
latencies = []
count = 0
const elapsed = await run(Number(values.seconds))
console.log(JSON.stringify({ count, seconds: elapsed, rate: count / elapsed, ...percentiles(latencies) }))
await conn.close()
