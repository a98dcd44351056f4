import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { serviceSkip } from '../services.js'
import { ConsumerProcess, PYTHON } from './consumer-process.js'
import { kafkaSkip, startMockCluster } from './kafka-helper.js'

// Kafka support for the tests: librdkafka's mock cluster (kafka-helper.ts), written to by
// confluent_kafka's Producer and read by seed 002's Marty consumer (examples/consumers/), in a
// consumer group, with the envelopes the Marty framework's EventPublisher writes. Brokers taken
// down and injected Produce errors fail a producer as they would against a real cluster.

const mock = await kafkaSkip()
const skip = mock !== false
  ? mock
  : await serviceSkip('Python', {
    at: `${PYTHON} with confluent_kafka`,
    probe: async () => {
      const probe = spawnSync(PYTHON, ['-c', 'import confluent_kafka'], { encoding: 'utf8' })
      if (probe.status !== 0) throw new Error((probe.stderr || String(probe.error ?? '')).trim().split('\n').at(-1) ?? '')
    },
    hint: 'install it with apt-get install python3-confluent-kafka'
  })

const root = new URL('../../', import.meta.url).pathname
const MARTY = join(root, 'examples/consumers/marty_consumer.py')

interface KafkaRecord {
  topic: string
  key: string
  headers: Record<string, string>
  value: unknown
}
interface Report { topic: string, key: string, error: string | null, partition: number, offset: number }

// confluent_kafka's Producer, acks=all: every record of the job, then a flush; one delivery report
// per record, printed as JSON.
const PRODUCER = `
import json, sys
from confluent_kafka import Producer
job = json.load(sys.stdin)
producer = Producer({"bootstrap.servers": job["bootstraps"], "acks": "all", **job["config"]})
reports = []
def delivered(err, msg):
    reports.append({"topic": msg.topic(), "key": msg.key().decode(), "error": err.name() if err else None,
                    "partition": msg.partition(), "offset": msg.offset()})
for r in job["records"]:
    producer.produce(r["topic"], json.dumps(r["value"]).encode(), key=r["key"].encode(),
                     headers=list(r["headers"].items()), on_delivery=delivered)
left = producer.flush(60)
print(json.dumps({"reports": reports, "undelivered": left}), flush=True)
`

async function produce (bootstraps: string, records: KafkaRecord[], config: Record<string, string | number> = {}): Promise<Report[]> {
  const child = spawn(PYTHON, ['-c', PRODUCER], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const closed = new Promise<number | null>((resolve, reject) => {
    child.once('close', resolve)
    child.once('error', reject)
  })
  child.stdin.end(JSON.stringify({ bootstraps, records, config }))
  const code = await closed
  if (code !== 0) throw new Error(`producer exited with ${String(code)}: ${stderr.slice(-2000)}`)
  const { reports, undelivered } = JSON.parse(stdout) as { reports: Report[], undelivered: number }
  if (undelivered !== 0) throw new Error(`${undelivered} records neither delivered nor failed after the flush`)
  return reports
}

// As the Marty framework's EventPublisher._publish_event writes them: metadata, event_type, payload;
// keyed with resource_id (audit), recipient_type (notification), aggregate_id (domain).
function envelope (eventType: string, payload: Record<string, unknown>) {
  return {
    metadata: {
      event_id: randomUUID(),
      timestamp: new Date().toISOString(),
      service_name: 'user-service',
      service_version: '1.4.2',
      correlation_id: `corr-${randomUUID().slice(0, 8)}`,
      causation_id: null,
      user_id: 'user-9',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      priority: 'normal',
      custom_headers: {}
    },
    event_type: eventType,
    payload
  }
}

t.test('a Marty consumer in a group reads each record once, with its key, headers and envelope', { skip }, async t => {
  const started = Date.now()
  const cluster = await startMockCluster(t)
  const topics = { audit: 'mmf.audit.events', notification: 'mmf.notification.events', domain: 'mmf.user-service.user.user_created' }
  for (const topic of Object.values(topics)) await cluster.createTopic(topic)
  const consumer = new ConsumerProcess(t, 'Marty consumer', PYTHON, [MARTY], {
    KAFKA_BROKERS: cluster.bootstraps,
    KAFKA_GROUP_ID: 'audit-service',
    KAFKA_TOPICS: Object.values(topics).join(',')
  })
  const headers = (type: string) => ({ 'content-type': 'application/json', 'x-event-type': type, 'x-tenant-id': 'tenant-1' })
  const records: KafkaRecord[] = [
    {
      topic: topics.audit,
      key: 'user-123',
      headers: headers('audit.recorded'),
      value: envelope('data_created', { action: 'create_user', resource_type: 'user', resource_id: 'user-123', success: true })
    },
    {
      topic: topics.notification,
      key: 'user',
      headers: headers('notification.requested'),
      value: envelope('user_welcome', {
        recipient_type: 'user', recipient_ids: ['user-123'], subject: 'Welcome!', message: 'Your account has been created.'
      })
    },
    {
      topic: topics.domain,
      key: 'user-123',
      headers: headers('domain.event'),
      value: envelope('user_created', {
        aggregate_type: 'user', aggregate_id: 'user-123', event_type: 'user_created', event_version: 1, event_data: { role: 'customer' }
      })
    }
  ]
  // Produced while the group forms (its first rebalance takes the mock ~3 s): read from the earliest offset.
  const reports = await produce(cluster.bootstraps, records)
  t.same(reports.map(r => r.error), [null, null, null], 'every record delivered (acks=all)')
  // Delivery reports come per partition, in no set order: each record's is found by its topic.
  const reportOf = (record: KafkaRecord) => reports.find(r => r.topic === record.topic && r.key === record.key)
  await consumer.waitFor(l => l.ready === true, 'ready line (partitions assigned)', 15_000)
  const handled = { [topics.audit]: 'marty audit', [topics.notification]: 'marty notification', [topics.domain]: 'marty domain' }
  for (const record of records) {
    const sent = record.value as ReturnType<typeof envelope>
    const line = await consumer.waitFor(l => l.event_id === sent.metadata.event_id, `${sent.event_type} record`, 15_000)
    t.same(line, {
      consumer: handled[record.topic],
      topic: record.topic,
      partition: reportOf(record)?.partition,
      offset: reportOf(record)?.offset,
      key: record.key,
      headers: record.headers,
      event_type: sent.event_type,
      event_id: sent.metadata.event_id,
      service_name: 'user-service',
      correlation_id: sent.metadata.correlation_id,
      payload: sent.payload
    }, `${sent.event_type}: read where it was written, as it was written`)
  }
  await consumer.stop()
  t.equal(consumer.lines.filter(l => 'event_id' in l).length, records.length, 'each record once')
  t.same(consumer.lines.filter(l => 'malformed' in l || 'unhandled' in l), [], 'nothing malformed or unhandled')
  t.comment(`records read ${Date.now() - started} ms after the cluster was started`)
})

t.test('with every broker down a produce times out; with them up again it is delivered', { skip }, async t => {
  const cluster = await startMockCluster(t)
  await cluster.createTopic('mmf.audit.events')
  const record = (key: string): KafkaRecord => ({
    topic: 'mmf.audit.events', key, headers: { 'x-event-type': 'audit.recorded' }, value: envelope('user_login', { action: 'login' })
  })
  await cluster.allDown()
  const down = Date.now()
  const failed = await produce(cluster.bootstraps, [record('down')], { 'message.timeout.ms': 2000 })
  t.same(failed.map(r => r.error), ['_MSG_TIMED_OUT'], 'no broker to take it: it times out')
  t.ok(Date.now() - down >= 2000, `after message.timeout.ms (${Date.now() - down} ms)`)
  await cluster.allUp()
  const up = Date.now()
  const delivered = await produce(cluster.bootstraps, [record('up')], { 'message.timeout.ms': 2000 })
  t.same(delivered.map(r => r.error), [null], `brokers back: delivered (${Date.now() - up} ms)`)
})

t.test('injected Produce errors: NOT_LEADER_OR_FOLLOWER is retried, MESSAGE_TOO_LARGE fails the record', { skip }, async t => {
  const cluster = await startMockCluster(t)
  await cluster.createTopic('mmf.audit.events', 1) // one partition: one Produce request per flush
  const record = (key: string): KafkaRecord => ({
    topic: 'mmf.audit.events', key, headers: {}, value: envelope('data_updated', { action: 'update_user' })
  })
  await cluster.pushProduceErrors([6, 6])
  const retried = await produce(cluster.bootstraps, [record('retried')], { 'message.timeout.ms': 5000 })
  t.same(retried.map(r => [r.error, r.offset]), [[null, 0]], 'delivered on the third attempt, once')
  await cluster.pushProduceErrors([10])
  const tooLarge = await produce(cluster.bootstraps, [record('too-large')], { 'message.timeout.ms': 5000 })
  t.same(tooLarge.map(r => r.error), ['MSG_SIZE_TOO_LARGE'], 'not retried: failed')
  await t.rejects(cluster.brokerDown(7), /no broker 7/, 'an unknown broker id is refused')
  await cluster.brokerDown(1)
  await cluster.brokerUp(1)
})
