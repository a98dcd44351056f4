import { v7 as uuidv7 } from 'uuid'
import { routingKeyFor, type CatalogEntry } from '../catalog/index.js'

/**
 * Who sent an event, as the request's headers say (src/http/context/ parses them): what every
 * envelope and message carries beside the data.
 */
export interface RequestContext {
  tenantId: string
  userId?: string
  accountId?: string
  correlationId: string
  traceparent?: string
  /** The caller's W3C tracestate, with a valid traceparent only. */
  tracestate?: string
}

/**
 * One accepted event before any envelope: every destination's envelope is made from it, so the
 * id, time and context are the same wherever the event goes. Plain data, so that it can be kept
 * (idempotency) and published again to the destinations that did not get it.
 */
export interface GatewayEvent {
  /** UUIDv7, made once per event. */
  id: string
  type: string
  /** RFC 3339, UTC. */
  time: string
  tenantId: string
  userId?: string
  accountId?: string
  correlationId: string
  traceparent?: string
  /** The caller's tracestate: messages carry it beside their traceparent (our spans do not change it). */
  tracestate?: string
  data: Record<string, unknown>
  /** RabbitMQ routing key, filled from the data. */
  routingKey: string
  /** Value of the catalog's dedupe field, when the type has one. */
  dedupeKey?: string
  /** Value of the catalog's group field (SQS FIFO MessageGroupId), when the type has one. */
  groupKey?: string
  idempotencyKey?: string
  /** The aggregate the event is about, when the catalog names one (e.g. Speaker / speaker_id). */
  aggregate?: { type: string, id: string }
}

const scalar = (value: unknown): string | undefined =>
  typeof value === 'string' || typeof value === 'number' ? String(value) : undefined

export function createEvent (
  entry: CatalogEntry,
  data: Record<string, unknown>,
  ctx: RequestContext,
  idempotencyKey?: string,
  now = Date.now()
): GatewayEvent {
  const event: GatewayEvent = {
    id: uuidv7({ msecs: now }),
    type: entry.type,
    time: new Date(now).toISOString(),
    tenantId: ctx.tenantId,
    correlationId: ctx.correlationId,
    data,
    routingKey: routingKeyFor(entry, data)
  }
  // Absent rather than undefined: the event is stored as JSON and compared as such.
  if (ctx.userId !== undefined) event.userId = ctx.userId
  if (ctx.accountId !== undefined) event.accountId = ctx.accountId
  if (ctx.traceparent !== undefined) event.traceparent = ctx.traceparent
  if (ctx.tracestate !== undefined) event.tracestate = ctx.tracestate
  const dedupe = entry.dedupeKey === undefined ? undefined : scalar(data[entry.dedupeKey])
  if (dedupe !== undefined) event.dedupeKey = dedupe
  const group = entry.groupKey === undefined ? undefined : scalar(data[entry.groupKey])
  if (group !== undefined) event.groupKey = group
  if (idempotencyKey !== undefined) event.idempotencyKey = idempotencyKey
  const aggregateId = entry.aggregate === undefined ? undefined : scalar(data[entry.aggregate.idField])
  if (entry.aggregate !== undefined && aggregateId !== undefined) event.aggregate = { type: entry.aggregate.type, id: aggregateId }
  return event
}
