import { BrokerError } from '../broker.js'

// librdkafka's error codes (rdkafka.h), as @confluentinc/kafka-javascript passes them: negative
// ones are the client's own, positive ones the broker's.
const MSG_SIZE_TOO_LARGE = 10
const RECORD_LIST_TOO_LARGE = 18
const MSG_TIMED_OUT = -192
const QUEUE_FULL = -184
const ALL_BROKERS_DOWN = -187
const TRANSPORT = -195
const UNKNOWN_TOPIC = -188
const UNKNOWN_TOPIC_OR_PART = 3
const INVALID_TOPIC = 17
const TOPIC_AUTHORIZATION_FAILED = 29
const CLUSTER_AUTHORIZATION_FAILED = 31
const INVALID_RECORD = 87
const AUTHENTICATION = -169
const SASL_AUTHENTICATION_FAILED = 58

/** What the adapter needs of a librdkafka error. */
export interface KafkaLikeError {
  code?: number
  message?: string
  isRetriable?: boolean
  isFatal?: boolean
}

const PERMANENT: Record<number, string> = {
  [UNKNOWN_TOPIC]: 'unknown_topic',
  [UNKNOWN_TOPIC_OR_PART]: 'unknown_topic',
  [INVALID_TOPIC]: 'invalid_topic',
  [TOPIC_AUTHORIZATION_FAILED]: 'access_denied',
  [CLUSTER_AUTHORIZATION_FAILED]: 'access_denied',
  [INVALID_RECORD]: 'malformed',
  [AUTHENTICATION]: 'access_denied',
  [SASL_AUTHENTICATION_FAILED]: 'access_denied'
}

/**
 * A failed produce as the publish outcome: a record too large is refused for good (413); a topic
 * that does not exist or may not be written, or a record the broker calls invalid, refused for
 * good (502); leader changes are retried inside the idempotent producer, and what still fails
 * (its deadline passed, brokers down, the local queue full) may be tried again (503).
 */
export function classifyKafkaError (err: KafkaLikeError | Error, topic: string): BrokerError {
  const code = 'code' in err && typeof err.code === 'number' ? err.code : undefined
  const text = err.message ?? 'failed'
  const message = `Kafka: ${text} (topic '${topic}')`
  if (code === MSG_SIZE_TOO_LARGE || code === RECORD_LIST_TOO_LARGE) {
    return new BrokerError(message, { retryable: false, reason: 'too_large', tooLarge: true, cause: err })
  }
  const permanent = code === undefined ? undefined : PERMANENT[code]
  if (permanent !== undefined) return new BrokerError(message, { retryable: false, reason: permanent, cause: err })
  if (code === MSG_TIMED_OUT) return new BrokerError(message, { retryable: true, reason: 'timeout', cause: err })
  if (code === QUEUE_FULL) return new BrokerError(message, { retryable: true, reason: 'overloaded', cause: err })
  if (code === ALL_BROKERS_DOWN || code === TRANSPORT) {
    return new BrokerError(message, { retryable: true, reason: 'disconnected', down: true, cause: err })
  }
  // A broker's error code (positive; librdkafka's own are negative) is its answer about the record.
  return new BrokerError(message, { retryable: true, reason: 'server_error', answered: code !== undefined && code > 0, cause: err })
}

export const KAFKA_CODES = { ALL_BROKERS_DOWN }
