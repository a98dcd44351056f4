import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import { kafkaClient, securityConf } from '../brokers/kafka/producer.js'
import type { KafkaSecurity } from '../config/index.js'
import { ConfigError, messageOf } from '../errors.js'
import { CliFailure } from './failure.js'

// Reading Kafka topics for the CLIs (verify, tail): from each partition's end as it is when the
// reader starts, without a consumer group (nothing joined, nothing committed), through the same
// client the gateway produces with.

/** A record as the client's consumer gives it. */
export interface KafkaRecord {
  topic: string
  partition: number
  offset: number
  key?: Buffer | string | null
  value: Buffer | null
  headers?: { [name: string]: Buffer | string }[]
}

/** The part of the client's (node-rdkafka style) KafkaConsumer the CLIs use. */
interface Consumer {
  connect (options: { timeout: number }, cb: (err: Error | null) => void): void
  getMetadata (options: { topic: string, timeout: number }, cb: (err: Error | null, metadata: Metadata) => void): void
  queryWatermarkOffsets (topic: string, partition: number, timeout: number,
    cb: (err: Error | null, offsets: { highOffset: number }) => void): void
  assign (assignments: { topic: string, partition: number, offset: number }[]): void
  unassign (): void
  consume (): void
  disconnect (cb: () => void): void
  on (event: 'data', listener: (record: KafkaRecord) => void): void
}
interface Metadata { topics: { name: string, partitions: { id: number }[] }[] }
type ConsumerClass = new (conf: Record<string, string | number | boolean>, topicConf: Record<string, string>) => Consumer

const CALL_MS = 10_000
const CLOSE_MS = 5_000

function call<T> (fn: (cb: (err: Error | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => { if (err === null) resolve(value); else reject(err) }))
}

export const text = (value: Buffer | string | null | undefined): string | undefined =>
  value === null || value === undefined ? undefined : value.toString()

/** A record's headers as text, by name (the last of a name wins). */
export function headersOf (record: KafkaRecord): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {}
  for (const header of record.headers ?? []) for (const [name, value] of Object.entries(header)) out[name] = text(value)
  return out
}

/**
 * Starts reading `topics` from their ends; every record from then on is emitted as `record`.
 * Fails with CliFailure(1) when the client is not installed, (failOn) when the cluster or a topic
 * cannot be read.
 */
export async function readTopics (
  brokers: string, topics: readonly string[], security: KafkaSecurity, failOn: number
): Promise<{ records: EventEmitter<{ record: [KafkaRecord] }>, close: () => Promise<void> }> {
  let KafkaConsumer: ConsumerClass
  try {
    KafkaConsumer = kafkaClient<{ KafkaConsumer: ConsumerClass }>().KafkaConsumer
  } catch (err) {
    throw new CliFailure(1, err instanceof ConfigError ? err.message : messageOf(err))
  }
  const consumer = new KafkaConsumer({
    'bootstrap.servers': brokers,
    'group.id': `event-gateway-cli-${randomUUID()}`,
    'enable.auto.commit': false,
    log_level: 0,
    ...securityConf(security)
  }, {})
  let closing: Promise<void> | undefined
  // Unassigned first: a consumer disconnected while records flow in may never call back (or crash).
  // Bounded: the CLI exits whatever the client does.
  const close = (): Promise<void> => {
    closing ??= closed()
    return closing
  }
  const closed = () => new Promise<void>(resolve => {
    try {
      consumer.unassign()
    } catch {
      // not connected: nothing assigned
    }
    const timer = setTimeout(resolve, CLOSE_MS)
    consumer.disconnect(() => {
      clearTimeout(timer)
      resolve()
    })
  })
  const records = new EventEmitter<{ record: [KafkaRecord] }>()
  try {
    await call<unknown>(cb => consumer.connect({ timeout: CALL_MS }, err => cb(err, undefined)))
    const ends: { topic: string, partition: number, offset: number }[] = []
    for (const topic of topics) {
      const metadata = await call<Metadata>(cb => consumer.getMetadata({ topic, timeout: CALL_MS }, cb))
      const partitions = metadata.topics.find(t => t.name === topic)?.partitions ?? []
      if (partitions.length === 0) throw new Error(`topic ${topic} has no partitions (does it exist?)`)
      for (const p of partitions) {
        const { highOffset } = await call<{ highOffset: number }>(cb => consumer.queryWatermarkOffsets(topic, p.id, CALL_MS, cb))
        ends.push({ topic, partition: p.id, offset: highOffset })
      }
    }
    consumer.on('data', record => records.emit('record', record))
    consumer.assign(ends)
    consumer.consume()
  } catch (err) {
    await close()
    throw new CliFailure(failOn, `cannot read ${topics.join(', ')} at ${brokers}: ${messageOf(err)}`)
  }
  return { records, close }
}
