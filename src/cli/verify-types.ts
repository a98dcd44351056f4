import type { KafkaSecurity } from '../config/index.js'
import type { WireMessage } from '../envelopes/index.js'
import type { CliConnections } from './amqp.js'

// What `npm run verify` watchers share: one module the watchers and their dispatcher import.

/** The test event where a destination put it. */
export interface Received {
  /** What arrived, as read from JSON (`{}` when it was not JSON). */
  envelope: unknown
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
  /**
   * The test message: the first whose body has one of `marks` (the event id; the correlation id,
   * for envelopes without the id), or undefined when none has come by `until` (ms since the epoch).
   */
  receive (marks: readonly string[], until: number): Promise<Received | undefined>
  close (): Promise<void>
}

export interface WatchContext {
  gateway: string
  tenant: string
  /** The type and routing key of the event about to be published. */
  type: string
  routingKey: string
  /** The destination's declared message fields for the test event (EventBridge source and detail type). */
  message: WireMessage | undefined
  /** How to reach Kafka (KAFKA_* variables). */
  kafka: KafkaSecurity
  /** SQS_QUEUE_URL: the queue EventBridge rules feed. */
  ruleQueueUrl: string | undefined
  connections: CliConnections
}
