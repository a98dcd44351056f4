import { SpanKind, SpanStatusCode, type Context, type Span, type Tracer } from '@opentelemetry/api'
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions'
import type { Messaging } from '../brokers/index.js'
import type { GatewayEvent } from '../envelopes/event.js'
import type { DeliveryResult } from './publisher.js'

// OpenTelemetry's messaging conventions are still in development: the names are copied here, as
// the semantic-conventions package advises, rather than imported from its unstable entry point.
const ATTR_MESSAGING_SYSTEM = 'messaging.system'
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name'
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type'
const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name'
const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id'
const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count'

/**
 * The producer span of one destination's publish: every event of the request that goes there,
 * retries included. One event: its id; several: their count.
 */
export function startProducerSpan (
  tracer: Tracer,
  destination: { name: string, messaging: Messaging },
  events: readonly GatewayEvent[],
  parent: Context
): Span {
  const only = events.length === 1 ? events[0] : undefined
  return tracer.startSpan(`send ${destination.name}`, {
    kind: SpanKind.PRODUCER,
    attributes: {
      [ATTR_MESSAGING_SYSTEM]: destination.messaging.system,
      [ATTR_MESSAGING_DESTINATION_NAME]: destination.messaging.destination,
      [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
      [ATTR_MESSAGING_OPERATION_NAME]: 'send',
      'evg.destination': destination.name,
      ...(only === undefined
        ? { [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: events.length }
        : { [ATTR_MESSAGING_MESSAGE_ID]: only.id, 'evg.event_type': only.type })
    }
  }, parent)
}

/** Ends the span; an event the destination did not take makes it an error, typed by its EVG code. */
export function endProducerSpan (span: Span, results: readonly DeliveryResult[]): void {
  const failed = results.filter((r): r is Extract<DeliveryResult, { ok: false }> => !r.ok)
  const first = failed[0]
  if (first !== undefined) {
    span.setAttribute(ATTR_ERROR_TYPE, first.error.code)
    const message = results.length === 1
      ? first.error.message
      : `${failed.length} of ${results.length} events not taken: ${first.error.message}`
    span.setStatus({ code: SpanStatusCode.ERROR, message })
  }
  span.end()
}
