import { kafkaClient, securityConf } from '../brokers/kafka/producer.js'
import type { KafkaSecurity } from '../config/index.js'
import { ConfigError, messageOf } from '../errors.js'
import type { DestinationConfig } from '../routing/index.js'
import { CliFailure } from './failure.js'
import type { Steps } from './steps.js'
import { fixedTopics } from './tail-kafka.js'

type KafkaDestination = Extract<DestinationConfig, { broker: 'kafka' }>

/** The part of the client's AdminClient provisioning uses. */
interface Admin {
  listTopics (options: { timeout: number }, cb: (err: Error | null, topics: string[]) => void): void
  createTopic (topic: { topic: string, num_partitions: number, replication_factor: number }, timeout: number,
    cb: (err?: Error) => void): void
  disconnect (): void
}

const CALL_MS = 10_000

export interface TopicSettings {
  /** --partitions; -1: the cluster's default (num.partitions). */
  partitions: number
  /** --replication-factor; -1: the cluster's default (default.replication.factor). */
  replicationFactor: number
}

/**
 * Idempotent: the destination's topics that no event changes, created when missing, with the
 * partitions and replication factor asked for (else the cluster's defaults). Topics named per
 * event (a template with placeholders) cannot be listed in advance: said, not created.
 */
export async function provisionKafka (
  destination: KafkaDestination, settings: TopicSettings, security: KafkaSecurity, steps: Steps
): Promise<void> {
  let admin: Admin
  try {
    const { AdminClient } = kafkaClient<{ AdminClient: { create: (conf: Record<string, unknown>) => Admin } }>()
    admin = AdminClient.create({ 'bootstrap.servers': destination.brokers, log_level: 0, ...securityConf(security) })
  } catch (err) {
    throw new CliFailure(1, err instanceof ConfigError ? err.message : messageOf(err))
  }
  try {
    let existing: string[]
    try {
      existing = await new Promise((resolve, reject) => admin.listTopics({ timeout: CALL_MS }, (err, topics) => {
        if (err === null) resolve(topics); else reject(err)
      }))
    } catch (err) {
      throw new CliFailure(2, `Kafka at ${destination.brokers} not reachable: ${messageOf(err)}`)
    }
    for (const topic of fixedTopics(destination)) {
      if (existing.includes(topic)) {
        steps.say(`topic ${topic}`, false)
        continue
      }
      const spec = { topic, num_partitions: settings.partitions, replication_factor: settings.replicationFactor }
      const refused = await new Promise<Error | undefined>(resolve => admin.createTopic(spec, CALL_MS, err => resolve(err ?? undefined)))
      if (refused !== undefined) throw new CliFailure(3, `Kafka refused to create topic ${topic}: ${messageOf(refused)}`)
      steps.say(`topic ${topic}`, true)
    }
    const perEvent = [...destination.formats].filter(([, f]) => f.fixed.topic === undefined).map(([type]) => type)
    if (perEvent.length > 0) {
      steps.warn(`the topics of ${perEvent.join(', ')} are named per event; create them with the cluster's tools, ` +
        'or let the cluster create them (auto.create.topics.enable)')
    }
  } finally {
    admin.disconnect()
  }
}
