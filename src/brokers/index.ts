import type { Tracer } from '@opentelemetry/api'
import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../storage/database.js'
import type { DestinationConfig } from '../routing/index.js'
import type { Broker } from './broker.js'
import { EventBridgeBroker } from './aws/eventbridge.js'
import { SqsBroker } from './aws/sqs.js'
import { LocalBroker } from './local.js'
import { KafkaBroker } from './kafka/index.js'
import { KafkaProducers } from './kafka/producer.js'
import type { KafkaSecurity } from '../config/index.js'
import { AmqpConnections } from './rabbitmq/connection.js'
import { RabbitMqBroker } from './rabbitmq/index.js'
import type { CoalescingOptions } from './aws/coalescer.js'

export interface BrokerFactoryOptions {
  db: Db
  log: FastifyBaseLogger
  /**
   * PUBLISH_TIMEOUT_MS: how long start-up waits for a RabbitMQ connection before serving 503s and
   * retrying, and each AWS call's deadline.
   */
  connectTimeoutMs: number
  /** Kafka destinations: how to reach the cluster (KAFKA_* variables) and librdkafka's deadline per record. */
  kafka?: { security: KafkaSecurity, deliveryTimeoutMs: number }
  /** AMQP_HEARTBEAT_SECONDS, asked of RabbitMQ when a URL does not name its own. */
  heartbeatSeconds?: number
  /** SQS and EventBridge: how events gather into calls (AWS_BATCH_*, AWS_CALLS_IN_FLIGHT). */
  coalescing?: CoalescingOptions
  /** Told each SQS or EventBridge call's entries (gateway_aws_call_entries). */
  onAwsCall?: (destination: string, broker: string, entries: number) => void
  /** When tracing is on: each SQS or EventBridge call's span, linked to its messages' producer spans. */
  tracer?: Tracer
}

export type BrokerFactory = (destination: DestinationConfig) => Broker

/** How traces name a destination's broker and where it sends (messaging.system, messaging.destination.name). */
export interface Messaging {
  system: string
  destination: string
}

/**
 * OpenTelemetry's names where it has them (`rabbitmq`, `aws_sqs`); EventBridge has none yet, so
 * it is named like the other AWS services in the conventions (`aws.sns`).
 */
export function messagingOf (destination: DestinationConfig): Messaging {
  switch (destination.broker) {
    case 'local': return { system: 'local', destination: destination.name }
    case 'rabbitmq': return { system: 'rabbitmq', destination: destination.exchange }
    case 'sqs': return { system: 'aws_sqs', destination: destination.queueUrl.slice(destination.queueUrl.lastIndexOf('/') + 1) }
    case 'eventbridge': return { system: 'aws.eventbridge', destination: destination.busName }
    case 'kafka': return { system: 'kafka', destination: destination.topic }
  }
}

/** Builds each destination's broker adapter; RabbitMQ destinations with one URL share a connection. */
export function brokerFactory (opts: BrokerFactoryOptions): BrokerFactory {
  const connections = new AmqpConnections(opts.log, opts.connectTimeoutMs, opts.heartbeatSeconds)
  const kafka = opts.kafka ?? { security: { protocol: 'PLAINTEXT', mechanism: 'PLAIN' }, deliveryTimeoutMs: opts.connectTimeoutMs }
  let producers: KafkaProducers | undefined
  const onAwsCall = opts.onAwsCall
  const tracer = opts.tracer
  const aws = (destination: DestinationConfig) => ({
    ...(opts.coalescing === undefined ? {} : { coalescing: opts.coalescing }),
    ...(onAwsCall === undefined ? {} : { onCall: (entries: number) => onAwsCall(destination.name, destination.broker, entries) }),
    ...(tracer === undefined ? {} : { trace: { tracer, ...messagingOf(destination) } })
  })
  return destination => {
    const source = destination.envelopeOptions.source
    switch (destination.broker) {
      case 'local': return new LocalBroker(opts.db)
      case 'rabbitmq': return new RabbitMqBroker(connections.for(destination.url), {
        exchange: destination.exchange,
        ...(destination.alternateExchange === undefined ? {} : { alternateExchange: destination.alternateExchange }),
        appId: source,
        log: opts.log
      })
      case 'sqs': return new SqsBroker({ ...destination, timeoutMs: opts.connectTimeoutMs, ...aws(destination) })
      case 'eventbridge': return new EventBridgeBroker({ ...destination, source, timeoutMs: opts.connectTimeoutMs, ...aws(destination) })
      case 'kafka': {
        producers ??= new KafkaProducers({ ...kafka, log: opts.log })
        const producer = producers.for(destination.brokers, destination.clientId, destination.compression)
        return new KafkaBroker(producer, { topic: destination.topic, closeTimeoutMs: opts.connectTimeoutMs })
      }
    }
  }
}
