import t from 'tap'
import { TENANT, build, exampleOf, post } from '../helper.js'

t.test('/metrics exposes the gateway counters, without tenant or user labels', async t => {
  const { app, broker } = await build(t)
  await app.inject(post('call.ended', exampleOf('call.ended'), { 'x-user-id': 'user-77' }))
  await app.inject(post('call.ended', { bad: true }))
  broker.failNext(3)
  await app.inject(post('call.started', exampleOf('call.started')))
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  const text = res.body
  t.match(text, /gateway_events_received_total\{type="call.ended"\} 2/)
  t.match(text, /gateway_events_rejected_total\{type="call.ended",code="EVG_VALIDATION"\} 1/)
  t.match(text, /gateway_events_rejected_total\{type="call.started",code="EVG_BROKER_UNAVAILABLE"\} 1/)
  t.match(text, /gateway_events_published_total\{destination="local",broker="memory",type="call.ended",outcome="published"\} 1/)
  t.match(text, /gateway_events_published_total\{destination="local",broker="memory",type="call.started",outcome="unavailable"\} 1/)
  t.match(text, /gateway_publish_duration_seconds_count\{destination="local",broker="memory",type="call.ended",outcome="published"\} 1/)
  t.match(text, /gateway_publish_duration_seconds_count\{destination="local",broker="memory",type="call.started",outcome="unavailable"\} 1/)
  t.match(text, /gateway_publish_retries_total\{destination="local",broker="memory"\} 2/)
  t.match(text, /gateway_broker_up\{destination="local",broker="memory"\} 1/)
  t.match(text, /process_resident_memory_bytes/)
  t.notMatch(text, TENANT)
  t.notMatch(text, 'user-77')
})

t.test('/health/ready follows the broker; /health/live does not', async t => {
  const { app, broker } = await build(t)
  t.same(
    (await app.inject('/health/ready')).json(),
    {
      status: 'ready',
      destinations: [{ name: 'local', broker: 'memory', up: true, delivery: 'sync' }],
      state: { store: 'sqlite', up: true }
    }
  )
  broker.up = false
  const down = await app.inject('/health/ready')
  t.equal(down.statusCode, 503)
  t.match(down.json(), { status: 'unavailable', destinations: [{ name: 'local', up: false, detail: 'simulated down' }] })
  t.match((await app.inject('/metrics')).body, /gateway_broker_up\{destination="local",broker="memory"\} 0/)
  t.equal((await app.inject('/health/live')).statusCode, 200)
})

t.test('/metrics follows Prometheus naming: counters end in _total and nothing else does', async t => {
  const { app } = await build(t)
  const types = [...(await app.inject('/metrics')).body.matchAll(/^# TYPE (\S+) (\S+)$/gm)]
    .map(([, name, type]) => ({ name: name as string, type: type as string }))
  t.ok(types.some(m => m.name === 'nodejs_active_handles'), 'Node\'s handle gauges are still there')
  for (const { name, type } of types) t.equal(name.endsWith('_total'), type === 'counter', `${name} (${type})`)
})

t.test('RED per route: every answer by route pattern, method and status; unknown paths are one route and no rejected event', async t => {
  const { app } = await build(t)
  await app.inject(post('call.ended', exampleOf('call.ended')))
  await app.inject(post('call.ended', { bad: true }))
  await app.inject('/favicon.ico')
  await app.inject('/wp-admin/setup.php?step=1')
  await app.inject('/v1/event-types/call.ended')
  await app.inject('/v1/event-types/no.such')
  await app.inject(post('no.such', {}))
  const text = (await app.inject('/metrics')).body
  const count = (labels: string) => text.match(new RegExp(`^gateway_http_request_duration_seconds_count\\{${labels}\\} (\\d+)$`, 'm'))?.[1]
  t.equal(count('route="/v1/events/call.ended",method="POST",status_code="202"'), '1')
  t.equal(count('route="/v1/events/call.ended",method="POST",status_code="400"'), '1')
  t.equal(count('route="/v1/event-types/:type",method="GET",status_code="200"'), '1', 'the pattern, not the URL')
  t.equal(count('route="/v1/event-types/:type",method="GET",status_code="404"'), '1')
  t.equal(count('route="unmatched",method="GET",status_code="404"'), '2', 'both unknown paths in one series')
  t.equal(count('route="unmatched",method="POST",status_code="404"'), '1')
  t.notMatch(text, 'favicon')
  t.notMatch(text, 'wp-admin')
  // Only refused events are rejected events: the unknown type was one, the unknown paths and the
  // catalog lookup were not.
  t.match(text, /gateway_events_rejected_total\{type="unknown",code="EVG_UNKNOWN_TYPE"\} 1\n/)
  t.notMatch(text, /gateway_events_rejected_total\{[^}]*code="EVG_NOT_FOUND"/)
})
