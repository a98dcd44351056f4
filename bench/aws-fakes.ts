// The AWS destinations' stand-ins, in a process of their own (so their CPU is not the gateway's):
// fauxqs for SQS and the tests' PutEvents endpoint for EventBridge. SQS is reached through a
// proxy that counts the calls that send (SendMessage, SendMessageBatch); EventBridge counts its
// PutEvents calls. GET <sqsEndpoint>/__counts answers both counts. A second endpoint of each
// answers every call ROUND_TRIP_MS later, as AWS does from within its region (the stand-ins answer
// in 1-2 ms here, AWS in 10-30). Prints one JSON line with the addresses and the queue's URL, then
// serves until killed.
import { Agent, createServer, request } from 'node:http'
import { startFauxqs } from 'fauxqs'
import { FakeEventBridge } from '../test/integration/fake-eventbridge.js'

const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false })
const queueUrl = fauxqs.createQueue('evg-bench').queueUrl
const counts = { sqs: 0, eventbridge: 0 }

const eventBridge = new FakeEventBridge()
const handle = eventBridge.handle.bind(eventBridge)
eventBridge.handle = async (target, input) => {
  if (target.endsWith('.PutEvents')) counts.eventbridge++
  return handle(target, input)
}
await new Promise<void>(resolve => eventBridge.server.listen(0, '127.0.0.1', resolve))

const ROUND_TRIP_MS = 15
const agent = new Agent({ keepAlive: true })
/** Passes each request on to `to`, after `delayMs`; SQS's sending calls counted when `countSqs`. */
function proxy (to: string, delayMs: number, countSqs: boolean) {
  const upstream = new URL(to)
  return createServer((req, res) => {
    if (req.url === '/__counts') {
      res.end(JSON.stringify(counts))
      return
    }
    if (countSqs && String(req.headers['x-amz-target']).startsWith('AmazonSQS.SendMessage')) counts.sqs++
    const target = { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers, agent }
    const send = () => {
      const up = request(target, answer => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      })
      up.on('error', () => res.destroy())
      req.pipe(up)
    }
    if (delayMs === 0) send()
    else setTimeout(send, delayMs)
  })
}
const listening = async (server: ReturnType<typeof createServer>) => {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return server
}
const sqsProxy = await listening(proxy(fauxqs.address, 0, true))
const sqsFar = await listening(proxy(fauxqs.address, ROUND_TRIP_MS, true))
const eventBridgeAt = `http://127.0.0.1:${(eventBridge.server.address() as { port: number }).port}`
const eventBridgeFar = await listening(proxy(eventBridgeAt, ROUND_TRIP_MS, false))

// Keep no history: the bench sends hundreds of thousands of events.
setInterval(() => { eventBridge.calls = [] }, 1000).unref()
setInterval(() => { fauxqs.reset() }, 5000).unref()
const port = (server: typeof sqsProxy) => (server.address() as { port: number }).port
console.log(JSON.stringify({
  sqsEndpoint: `http://127.0.0.1:${port(sqsProxy)}`,
  queueUrl,
  eventBridgeEndpoint: `http://127.0.0.1:${port(eventBridge.server)}`,
  sqsFarEndpoint: `http://127.0.0.1:${port(sqsFar)}`,
  eventBridgeFarEndpoint: `http://127.0.0.1:${port(eventBridgeFar)}`,
  roundTripMs: ROUND_TRIP_MS
}))
