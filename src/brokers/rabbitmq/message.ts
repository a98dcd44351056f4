import type { Options } from 'amqplib'
import type { GatewayEvent } from '../../event.js'
import { BrokerError, type OutgoingEvent, type PublishOutcome } from '../broker.js'

/** What a publish's confirm came back as: null (confirmed), an error (nack, channel closed) or a return before it. */
export const RETURNED = Symbol('returned')
export type ConfirmResult = Error | typeof RETURNED | null
const OK: PublishOutcome = Object.freeze({ ok: true })

/** The AMQP properties and headers every message carries (docs/brokers.md): persistent and mandatory. */
export function publishOptions ({ event, contentType, traceparent }: OutgoingEvent, appId: string): Options.Publish {
  const headers: Record<string, string> = { 'x-event-type': event.type, 'x-tenant-id': event.tenantId, 'x-correlation-id': event.correlationId }
  if (event.userId !== undefined) headers['x-user-id'] = event.userId
  if (event.accountId !== undefined) headers['x-account-id'] = event.accountId
  if (traceparent !== undefined) headers.traceparent = traceparent
  return {
    persistent: true,
    mandatory: true,
    contentType,
    messageId: event.id,
    correlationId: event.correlationId,
    timestamp: Math.floor(Date.parse(event.time) / 1000),
    type: event.type,
    appId,
    headers
  }
}

/** A confirm's result as the publish outcome clients see: unroutable and malformed for good, nacks and lost channels retryable. */
export function outcomeOf (result: ConfirmResult | BrokerError, event: GatewayEvent): PublishOutcome {
  if (result === null) return OK
  if (result === RETURNED) {
    return { ok: false, error: new BrokerError(`no queue is bound for routing key '${event.routingKey}' and no alternate exchange keeps it`, { retryable: false, reason: 'unroutable' }) }
  }
  if (result instanceof BrokerError) return { ok: false, error: result }
  if (result instanceof RangeError) return { ok: false, error: new BrokerError(result.message, { retryable: false, reason: 'malformed', cause: result }) }
  const closed = /closed/i.test(result.message)
  return { ok: false, error: new BrokerError(closed ? `channel closed before the confirm: ${result.message}` : `RabbitMQ nacked the event: ${result.message}`, { retryable: true, reason: closed ? 'connection_lost' : 'nack', cause: result }) }
}
