import type { Destination } from '../routing/index.js'
import type { CliConnections } from './amqp.js'
import { watchLocal } from './verify-local.js'
import { watchRabbitMq } from './verify-rabbitmq.js'
import { watchSqs } from './verify-sqs.js'

/** The test event where a destination put it. */
export interface Received {
  envelope: Record<string, unknown>
  /** The tenant as the transport carries it, for profiles without one in the body (draft-genie). */
  transportTenant?: { where: string, value: unknown }
  /** What is wrong with the wrapping around the envelope (EventBridge's source, detail-type). */
  problems: string[]
  /** Takes the test message away; says how ("deleted", "acked", ...). Throws when it cannot. */
  remove (): Promise<string>
}

/** Looks for the test event where one destination puts it; set up before the event is published. */
export interface Watcher {
  /** Where it looks, for the report. */
  readonly where: string
  /** The event carrying `eventId`, or undefined when it has not come by `until` (ms since the epoch). */
  receive (eventId: string, until: number): Promise<Received | undefined>
  close (): Promise<void>
}

export interface WatchContext {
  gateway: string
  tenant: string
  /** The type and routing key of the event about to be published. */
  type: string
  routingKey: string
  /** SQS_QUEUE_URL: the queue EventBridge rules feed. */
  ruleQueueUrl: string | undefined
  connections: CliConnections
}

/** Starts watching; rejects with a CliFailure when it cannot (exit 1 for config, 3 otherwise). */
export function watch (destination: Destination, ctx: WatchContext): Promise<Watcher> {
  switch (destination.broker) {
    case 'rabbitmq': return watchRabbitMq(destination, ctx)
    case 'sqs': return watchSqs(destination.queueUrl, destination, undefined)
    case 'eventbridge': return watchSqs(ctx.ruleQueueUrl as string, { ...(destination.region === undefined ? {} : { region: destination.region }) }, { bus: destination.busName, source: destination.envelopeOptions.source, type: ctx.type })
    case 'local': return watchLocal(ctx)
  }
}
