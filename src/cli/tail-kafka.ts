import type { KafkaSecurity } from '../config/index.js'
import type { DestinationConfig } from '../routing/index.js'
import { exitWith, isObject } from './common.js'
import { CliFailure } from './failure.js'
import { headersOf, readTopics, text } from './kafka-reader.js'
import { maskEnvelope } from './mask.js'

type KafkaDestination = Extract<DestinationConfig, { broker: 'kafka' }>

export interface KafkaTail {
  /** --topic; default the destination's topics that are the same for every event. */
  topics: readonly string[]
  limit: number
  showSensitive: boolean
  /** Sensitive data fields per type; `all`: every one of them, for a record whose type cannot be told. */
  sensitive: ReadonlyMap<string, readonly string[]>
  all: readonly string[]
  security: KafkaSecurity
}

/** The topics of the destination's types whose topic no event changes (a topic without placeholders). */
export function fixedTopics (destination: KafkaDestination): string[] {
  const topics = new Set<string>()
  for (const format of destination.formats.values()) if (format.fixed.topic !== undefined) topics.add(format.fixed.topic)
  return [...topics]
}

/**
 * Prints one JSON line per record the destination's topics get from now on (topic, key and the
 * envelope, its sensitive fields masked by the record's x-event-type header), until Ctrl-C or
 * `limit`. Never returns.
 */
export async function tailKafka (destination: KafkaDestination, opts: KafkaTail): Promise<never> {
  const topics = opts.topics.length > 0 ? opts.topics : fixedTopics(destination)
  if (topics.length === 0) {
    exitWith(1, `tail: destination '${destination.name}' names its topics per event (${destination.topic}); say which with --topic`)
  }
  let reader: Awaited<ReturnType<typeof readTopics>>
  try {
    reader = await readTopics(destination.brokers, topics, opts.security, 2)
  } catch (err) {
    if (err instanceof CliFailure) exitWith(err.code, `tail: ${err.message}`)
    throw err
  }
  let seen = 0
  let stopping = false
  // Once, and outside the client's callback: what was printed is flushed and the process ends. The
  // reader joined no group and committed nothing, so there is nothing to leave; closing the client
  // while records flow in can hang or crash it (librdkafka's threads end with the process).
  const stop = () => {
    if (stopping) return
    stopping = true
    setImmediate(() => process.stdout.write('', () => process.exit(0)))
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  reader.records.on('record', record => {
    if (stopping) return
    const type = headersOf(record)['x-event-type'] ?? headersOf(record).ce_type
    const where = { topic: record.topic, key: text(record.key) ?? null }
    let line: Record<string, unknown>
    try {
      const envelope: unknown = JSON.parse(text(record.value) ?? '')
      const format = (type === undefined ? undefined : destination.formats.get(type)) ?? destination.formats.values().next().value
      const known = type !== undefined && (opts.sensitive.has(type) || destination.formats.has(type))
      const masked = known ? opts.sensitive.get(type) ?? [] : opts.all
      const shown = opts.showSensitive || format === undefined ? envelope : maskEnvelope(envelope, format.placements, masked)
      line = { ...where, ...(isObject(shown) ? shown : { envelope: shown }) }
    } catch {
      line = { ...where, offset: record.offset, error: 'not a JSON envelope', bytes: record.value?.length ?? 0 }
    }
    process.stdout.write(JSON.stringify(line) + '\n')
    if (++seen >= opts.limit) stop()
  })
  console.error(`tail: destination ${destination.name}, topics ${topics.join(', ')} on ${destination.brokers} ` +
    `(${destination.envelope} envelopes), from now on; Ctrl-C to stop`)
  return await new Promise<never>(() => {})
}
