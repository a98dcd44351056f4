// Closed-loop load like the autocannon CLI legs, with a fresh Idempotency-Key on every request
// (the CLI cannot vary a header). Prints autocannon's JSON result on stdout.
// Usage: tsx bench/keyed.ts --url U --body FILE --connections N --seconds S [--header 'name: value']... [--unkeyed]
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    body: { type: 'string' },
    connections: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '10' },
    header: { type: 'string', multiple: true, default: [] },
    unkeyed: { type: 'boolean', default: false }
  }
})
const headers: Record<string, string> = { 'content-type': 'application/json' }
for (const h of values.header ?? []) {
  const at = h.indexOf(':')
  headers[h.slice(0, at).trim()] = h.slice(at + 1).trim()
}
const result = await autocannon({
  url: values.url as string,
  method: 'POST',
  connections: Number(values.connections),
  duration: Number(values.seconds),
  headers,
  body: readFileSync(values.body as string, 'utf8'),
  // --unkeyed: the same generator without the header, so both legs pay the same client cost
  requests: [{
    setupRequest: (request: autocannon.Request) =>
      values.unkeyed === true ? request : ({ ...request, headers: { ...request.headers, 'idempotency-key': randomUUID() } })
  }]
})
console.log(JSON.stringify(result))
