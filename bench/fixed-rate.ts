// Leg 7, HTTP side: an open-loop load at a fixed rate (requests start on schedule whether or not
// earlier ones have finished), with latency measured in microseconds. Prints one JSON line.
import { Agent, request } from 'node:http'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { openLoop, percentiles } from './load.js'

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

const elapsed = await openLoop(rate, Number(values.seconds), one)
agent.destroy()
console.log(JSON.stringify({ count: latencies.length, seconds: elapsed, rate: latencies.length / elapsed, ...percentiles(latencies), non2xx, errors }))
