// Leg 7, HTTP side: an open-loop load at a fixed rate (requests start on schedule whether or not
// earlier ones have finished), with latency measured in microseconds. Prints one JSON line.
import { Agent, request } from 'node:http'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { url: { type: 'string' }, rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '30' }, body: { type: 'string' }, header: { type: 'string', multiple: true, default: [] } } })
if (values.url === undefined || values.body === undefined) throw new Error('--url and --body are required')
const url = new URL(values.url)
const body = readFileSync(values.body)
const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': body.length }
for (const h of values.header) { const i = h.indexOf(':'); headers[h.slice(0, i).trim()] = h.slice(i + 1).trim() }
const agent = new Agent({ keepAlive: true, maxSockets: 256 })
const rate = Number(values.rate)
const latencies: number[] = []
let non2xx = 0
let errors = 0

const one = () => new Promise<void>(resolve => {
  const start = process.hrtime.bigint()
  const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent }, res => {
    res.resume()
    res.on('end', () => {
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6)
      if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode > 299) non2xx++
      resolve()
    })
  })
  req.on('error', () => { errors++; resolve() })
  req.end(body)
})

const started = Date.now()
const end = started + Number(values.seconds) * 1000
const pending: Promise<void>[] = []
let sent = 0
while (Date.now() < end) {
  const due = Math.floor((Date.now() - started) * rate / 1000)
  while (sent < due) { pending.push(one()); sent++ }
  await new Promise(resolve => setTimeout(resolve, 1))
}
await Promise.all(pending)
agent.destroy()
latencies.sort((a, b) => a - b)
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0
const elapsed = (Date.now() - started) / 1000
console.log(JSON.stringify({ count: latencies.length, seconds: elapsed, rate: latencies.length / elapsed, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), non2xx, errors }))
