import { once } from 'node:events'
import type { KafkaSecurity } from '../config/index.js'
import type { DestinationConfig } from '../routing/index.js'
import { headersOf, readTopics, text, type KafkaRecord } from './kafka-reader.js'
import type { WatchContext, Watcher } from './verify-types.js'

/**
 * Reads the test event's topic from each partition's end as it is before the event is published,
 * and looks for the record whose value or headers carry the test event's marks.
 */
export async function watchKafka (
  destination: Extract<DestinationConfig, { broker: 'kafka' }>, ctx: WatchContext, security: KafkaSecurity
): Promise<Watcher> {
  const topic = ctx.message?.topic ?? destination.topic
  const where = `topic ${topic} (${destination.brokers})`
  const { records, close } = await readTopics(destination.brokers, [topic], security, 3)
  // Each record is looked at once, as it comes: only those with a mark are kept.
  let marks: readonly string[] = []
  const candidates: KafkaRecord[] = []
  records.on('record', record => candidates.push(record))
  const carries = (r: KafkaRecord) => {
    const all = [text(r.value) ?? '', ...Object.values(headersOf(r))]
    return marks.some(mark => all.some(v => v?.includes(mark) === true))
  }
  const ours = (wanted: readonly string[]) => {
    marks = wanted
    let found: KafkaRecord | undefined
    while (found === undefined && candidates.length > 0) {
      const next = candidates.shift() as KafkaRecord
      if (carries(next)) found = next
    }
    return found
  }
  return {
    where,
    async receive (marks, until) {
      let record = ours(marks)
      while (record === undefined && Date.now() < until) {
        await once(records, 'record', { signal: AbortSignal.timeout(Math.max(1, until - Date.now())) }).catch(() => undefined)
        record = ours(marks)
      }
      if (record === undefined) return undefined
      let envelope: unknown
      try {
        envelope = JSON.parse(text(record.value) ?? '')
      } catch {
        envelope = {}
      }
      const headers = headersOf(record)
      return {
        envelope,
        problems: [],
        transportTenant: { where: 'record header x-tenant-id', value: headers['x-tenant-id'] ?? headers.ce_tenantid },
        remove: async () => 'kept (Kafka keeps records; nothing was committed)'
      }
    },
    close
  }
}
