// amqplib on its own, publishing like the gateway's batch path: bursts of `--burst` persistent,
// mandatory messages with the gateway's properties and headers, each burst waiting for its
// confirms, `--rate` bursts per second. Prints the process's CPU per message: the floor under the
// batch leg's CPU per event. Usage: tsx bench/amqp-burst.ts [--burst 100] [--rate 15] [--seconds 8]
import { readFileSync } from 'node:fs'
import type { Writable } from 'node:stream'
import { parseArgs } from 'node:util'
import amqplib from 'amqplib'
import { coalesceWrites } from '../src/brokers/rabbitmq/coalesce.js'
import { cpuTicks } from './load.js'

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672' },
    burst: { type: 'string', default: '100' },
    rate: { type: 'string', default: '15' },
    seconds: { type: 'string', default: '8' },
    coalesce: { type: 'boolean', default: false },
    body: { type: 'string' }
  }
})
const body = values.body === undefined ? Buffer.alloc(1200, 'x') : readFileSync(values.body)
const conn = await amqplib.connect(values.url, { noDelay: true })
if (values.coalesce) coalesceWrites((conn.connection as unknown as { stream: Writable }).stream)
const ch = await conn.createConfirmChannel()
const burst = Number(values.burst)
const headers = {
  'x-event-type': 'call.ended',
  'x-tenant-id': '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  'x-correlation-id': '0b7c1f4e-2f43-4a8f-9d57-6a1f0c2d9e11'
}
const one = () => Promise.all(Array.from({ length: burst }, () => new Promise<void>((resolve, reject) => {
  ch.publish('evg-bench', 'comms.call.ended', Buffer.from(body), {
    persistent: true,
    mandatory: true,
    contentType: 'application/cloudevents+json',
    messageId: '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b',
    correlationId: headers['x-correlation-id'],
    timestamp: Math.floor(Date.now() / 1000),
    type: 'call.ended',
    appId: 'event-gateway',
    headers
  }, err => err ? reject(err) : resolve())
})))
async function run (seconds: number): Promise<number> {
  const started = Date.now()
  let sent = 0
  const pending: Promise<unknown>[] = []
  while (Date.now() < started + seconds * 1000) {
    const due = Math.floor((Date.now() - started) * Number(values.rate) / 1000)
    while (sent < due) { pending.push(one()); sent++ }
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  await Promise.all(pending)
  return sent * burst
}
await run(2)
const before = cpuTicks(process.pid)
const messages = await run(Number(values.seconds))
const ticks = cpuTicks(process.pid) - before
console.log(JSON.stringify({ messages, cpuUsPerMessage: ticks * 1e4 / messages }))
await conn.close()
