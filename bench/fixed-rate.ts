// The fixed-rate HTTP client: an open-loop load (requests start on schedule whether or not
// earlier ones have finished), with latency measured in microseconds. With `--pid`, it also reads
// that server process's CPU time (utime + stime, every thread, and its main thread's alone) just before the first request and
// just after the last answer, so CPU per event covers exactly the measured window. With
// `--key-header NAME`, every request carries its own value of that header (an Idempotency-Key).
// Prints one JSON line.
import { Agent, request } from 'node:http'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { cpuTicks, openLoop, percentiles } from './load.js'

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '30' },
    body: { type: 'string' },
    header: { type: 'string', multiple: true, default: [] },
    pid: { type: 'string' },
    'key-header': { type: 'string' }
  }
})
if (values.url === undefined || values.body === undefined) throw new Error('--url and --body are required')
const url = new URL(values.url)
const body = readFileSync(values.body)
const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': body.length }
for (const h of values.header) { const i = h.indexOf(':'); headers[h.slice(0, i).trim()] = h.slice(i + 1).trim() }
const keyHeader = values['key-header']
const agent = new Agent({ keepAlive: true, maxSockets: 256 })
const rate = Number(values.rate)
const pid = values.pid === undefined ? undefined : Number(values.pid)
const latencies: number[] = []
let non2xx = 0
let errors = 0
let sent = 0

const one = () => new Promise<void>(resolve => {
  const start = process.hrtime.bigint()
  const h = keyHeader === undefined ? headers : { ...headers, [keyHeader]: `bench-${process.pid}-${++sent}` }
  const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: h, agent }, res => {
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

const startedAt = Date.now()
const before = pid === undefined ? undefined : cpuTicks(pid)
const mainBefore = pid === undefined ? undefined : cpuTicks(pid, pid)
const elapsed = await openLoop(rate, Number(values.seconds), one)
const after = pid === undefined ? undefined : cpuTicks(pid)
const mainAfter = pid === undefined ? undefined : cpuTicks(pid, pid)
const endedAt = Date.now()
agent.destroy()
const count = latencies.length
console.log(JSON.stringify({
  count,
  ok: count - non2xx,
  seconds: elapsed,
  rate: count / elapsed,
  ...percentiles(latencies),
  non2xx,
  errors,
  startedAt,
  endedAt,
  ...(before === undefined || after === undefined ? {} : { cpuTicks: after - before }),
  // The main thread's share (the event loop: HTTP, JSON, envelopes, amqplib); the rest is
  // worker threads (the SQLite writers and their fsyncs) and V8's GC and compiler threads.
  ...(mainBefore === undefined || mainAfter === undefined ? {} : { mainCpuTicks: mainAfter - mainBefore })
}))
