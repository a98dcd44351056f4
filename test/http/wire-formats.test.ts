import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { MemoryBroker } from '../../src/brokers/memory.js'
import type { DestinationConfig } from '../../src/routing/index.js'
import { LogCapture, TENANT, dataDir, exampleOf, post, postBatch, testConfig } from '../helper.js'

// Wire formats as a client and an operator meet them, in-process with memory brokers: what each
// destination's broker is handed (body and message fields), the 400 for a body its broker would
// refuse, a start stopped by a template error, and a spooled destination's message fields kept
// through the outbox.

async function gateway (t: Test, destinations: Record<string, unknown>, env: Record<string, string> = {}) {
  const dir = dataDir(t)
  const path = join(dir, 'routes.json')
  writeFileSync(path, JSON.stringify({ destinations, routes: [{ types: ['*'], to: Object.keys(destinations) }] }))
  const brokers = new Map<string, MemoryBroker>()
  const app = await buildApp(testConfig(t, { ROUTES_FILE: path, EVENT_TYPES: 'speaker.onboarded', ...env }), {
    brokers: (d: DestinationConfig) => { const b = new MemoryBroker(d.name); brokers.set(d.name, b); return b },
    env: { SQS_URL: 'https://sqs.eu-central-1.amazonaws.com/123456789012/speakers.fifo' },
    logStream: new LogCapture()
  })
  t.teardown(() => app.close())
  await app.ready()
  return { app, brokers }
}

const speaker = (id: string) => ({ ...exampleOf('speaker.onboarded'), speaker_id: id })

t.test('each destination gets its own body and message fields; fan-out keeps one id', async t => {
  const { app, brokers } = await gateway(t, {
    queue: {
      broker: 'sqs',
      queueUrl: '${SQS_URL}',
      envelope: { id: '{{id}}', who: '{{data.speaker_id}}', '...': '{{data}}' },
      message: { groupId: '{{data.speaker_id}}', deduplicationId: { $sha256: '{{tenant}}:{{data.speaker_id}}' } }
    },
    exchange: {
      broker: 'rabbitmq',
      exchange: 'x',
      envelope: 'draft-genie',
      message: { routingKey: 'speakers.{{data.bucket}}', headers: { 'x-bucket': '{{data.bucket}}' } }
    }
  })
  const res = await app.inject(post('speaker.onboarded', speaker('spk-9'), { 'x-user-id': 'u-1' }))
  t.equal(res.statusCode, 202)
  const id = res.json().id as string
  const sqs = await brokers.get('queue')?.waitFor({ type: 'speaker.onboarded' })
  const amqp = await brokers.get('exchange')?.waitFor({ type: 'speaker.onboarded' })
  const data = speaker('spk-9')
  t.same(sqs?.envelope, { id, who: 'spk-9', ...data }, 'the template')
  t.match(sqs?.message, { groupId: 'spk-9', deduplicationId: /^[0-9a-f]{64}$/ })
  t.equal(sqs?.contentType, 'application/json')
  t.match(amqp?.envelope, { eventId: id, eventType: 'speaker.onboarded', aggregateId: 'spk-9', payload: data }, 'the profile')
  t.equal(amqp?.routingKey, 'speakers.GOOD', 'the declared routing key')
  t.match(amqp?.message?.headers, { 'x-bucket': 'GOOD', 'x-tenant-id': TENANT, 'x-user-id': 'u-1' }, 'declared headers beside the defaults')
})

t.test('a body the schema takes but a broker would refuse for its message fields: 400 naming the field and destination', async t => {
  const { app, brokers } = await gateway(t, {
    queue: { broker: 'sqs', queueUrl: '${SQS_URL}', message: { groupId: '{{data.speaker_id}}' } }
  })
  const bad = await app.inject(post('speaker.onboarded', speaker('Zürich Nord')))
  t.equal(bad.statusCode, 400)
  t.match(bad.json(), {
    code: 'EVG_VALIDATION',
    errors: [{
      path: '/speaker_id',
      message: 'has characters the SQS MessageGroupId cannot hold (printable ASCII only) (groupId) at destination queue'
    }]
  })
  const batch = await app.inject(postBatch([
    { type: 'speaker.onboarded', data: speaker('spk-1') },
    { type: 'speaker.onboarded', data: speaker('spk 2') }
  ]))
  t.equal(batch.statusCode, 207)
  t.match(batch.json().results, [
    { id: /./, status: 'published' },
    { error: { code: 'EVG_VALIDATION', errors: [{ path: '/events/1/data/speaker_id' }] } }
  ])
  t.same(brokers.get('queue')?.published.map(e => e.message?.groupId), ['spk-1'], 'only the good one reached the broker')
})

t.test('a template error stops the start, naming the file, the field, the type and why', async t => {
  const dir = dataDir(t)
  const path = join(dir, 'routes.json')
  writeFileSync(path, JSON.stringify({
    destinations: {
      queue: {
        broker: 'sqs',
        queueUrl: 'https://sqs.eu-central-1.amazonaws.com/123456789012/q.fifo',
        envelope: { who: '{{data.speaker}}' }
      }
    },
    routes: [{ types: ['*'], to: ['queue'] }]
  }))
  await t.rejects(buildApp(testConfig(t, { ROUTES_FILE: path, EVENT_TYPES: 'speaker.onboarded' }), { brokers: () => new MemoryBroker() }), {
    name: 'ConfigError',
    message: `ROUTES_FILE: ${path}: destinations.queue.envelope.who (speaker.onboarded): ` +
      'data.speaker is not a field of speaker.onboarded (its data has speaker_id, external_id, name, bucket)'
  })
})

t.test('a spooled destination keeps the rendered message fields in its outbox, and its relay sends them', async t => {
  const { app, brokers } = await gateway(t, {
    queue: {
      broker: 'sqs',
      queueUrl: '${SQS_URL}',
      delivery: 'spool',
      message: { groupId: 'bucket-{{data.bucket}}', attributes: { bucket: '{{data.bucket}}' } }
    }
  })
  const res = await app.inject(post('speaker.onboarded', speaker('spk-4')))
  t.equal(res.statusCode, 202)
  t.equal(res.json().status, 'queued')
  const relayed = await brokers.get('queue')?.waitFor({ type: 'speaker.onboarded' })
  t.equal(relayed?.message?.groupId, 'bucket-GOOD', 'the group id made at accept, though the outbox keeps no data')
  t.match(relayed?.message?.attributes, { bucket: { type: 'String', value: 'GOOD' }, 'tenant-id': { value: TENANT } })
})
