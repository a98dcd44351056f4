import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../database.js'
import type { Destination } from '../routing/index.js'
import type { Broker } from './broker.js'
import { EventBridgeBroker } from './aws/eventbridge.js'
import { SqsBroker } from './aws/sqs.js'
import { LocalBroker } from './local.js'
import { AmqpConnections } from './rabbitmq/connection.js'
import { RabbitMqBroker } from './rabbitmq/index.js'

export interface BrokerFactoryOptions {
  db: Db
  log: FastifyBaseLogger
  /** How long start-up waits for a RabbitMQ connection before serving 503s and retrying. */
  connectTimeoutMs: number
}

export type BrokerFactory = (destination: Destination) => Broker

/** Builds each destination's broker adapter; RabbitMQ destinations with one URL share a connection. */
export function brokerFactory (opts: BrokerFactoryOptions): BrokerFactory {
  const connections = new AmqpConnections(opts.log, opts.connectTimeoutMs)
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
      case 'sqs': return new SqsBroker(destination)
      case 'eventbridge': return new EventBridgeBroker({ ...destination, source })
    }
  }
}
