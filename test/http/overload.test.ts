import t from 'tap'
import { TENANT, build, exampleOf, post } from '../helper.js'

t.test('under pressure, event routes answer 503 EVG_OVERLOADED at once; health and metrics stay reachable', async t => {
  // a heap threshold of 1 byte: the first sample puts the gateway under pressure
  const { app, broker } = await build(t, {}, { pressure: { maxHeapUsedBytes: 1, maxEventLoopDelay: 0, sampleInterval: 10 } })
  let res = await app.inject(post('call.ended', exampleOf('call.ended')))
  for (let i = 0; i < 100 && res.statusCode !== 503; i++) {
    await new Promise(resolve => setTimeout(resolve, 10)) // the plugin samples on a timer; no event to await
    res = await app.inject(post('call.ended', exampleOf('call.ended')))
  }
  t.equal(res.statusCode, 503)
  t.match(res.json(), { code: 'EVG_OVERLOADED', detail: /heapUsedBytes/ })
  t.equal(res.headers['retry-after'], '1')
  const published = broker.published.length
  const batch = await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: JSON.stringify({ events: [{ type: 'call.ended', data: exampleOf('call.ended') }] })
  })
  t.equal(batch.json().code, 'EVG_OVERLOADED')
  t.equal(broker.published.length, published, 'nothing more was published')
  t.equal((await app.inject('/health/live')).statusCode, 200)
  t.equal((await app.inject('/health/ready')).statusCode, 200)
  t.match((await app.inject('/metrics')).body, /gateway_events_rejected_total\{type="call.ended",code="EVG_OVERLOADED"\} \d/)
})

t.test('the default thresholds leave normal load alone', async t => {
  const { app } = await build(t)
  for (let i = 0; i < 20; i++) t.equal((await app.inject(post('call.ended', exampleOf('call.ended')))).statusCode, 202)
})
