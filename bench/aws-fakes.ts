// The AWS destinations' stand-ins, in a process of their own (so their CPU is not the gateway's):
// fauxqs for SQS and the tests' PutEvents endpoint for EventBridge. Prints one JSON line with
// their addresses and the queue's URL, then serves until killed.
import { startFauxqs } from 'fauxqs'
import { FakeEventBridge } from '../test/integration/fake-eventbridge.js'

const fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false })
const queueUrl = fauxqs.createQueue('evg-bench').queueUrl
const eventBridge = new FakeEventBridge()
await new Promise<void>(resolve => eventBridge.server.listen(0, '127.0.0.1', resolve))
// Keep no history: the bench sends hundreds of thousands of events.
setInterval(() => { eventBridge.calls = [] }, 1000).unref()
setInterval(() => { fauxqs.reset() }, 5000).unref()
const { port } = eventBridge.server.address() as { port: number }
console.log(JSON.stringify({ sqsEndpoint: fauxqs.address, queueUrl, eventBridgeEndpoint: `http://127.0.0.1:${port}` }))
