import { v7 as uuidv7 } from 'uuid'
import type { RequestContext } from './context.js'

/** CloudEvents 1.0, structured JSON mode, with the gateway's context extension attributes. */
export interface Envelope {
  specversion: '1.0'
  id: string
  source: string
  type: string
  time: string
  datacontenttype: 'application/json'
  dataschema: string
  tenantid: string
  userid?: string
  accountid?: string
  correlationid: string
  traceparent?: string
  data: unknown
}

export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json'

/** The URI a type's schema is known by; GET /v1/event-types/{type} serves it. */
export function dataSchemaUri (type: string): string {
  return `urn:event-gateway:event-types:${type}`
}

export function buildEnvelope (type: string, data: unknown, ctx: RequestContext, source: string, now = new Date()): Envelope {
  const envelope: Envelope = {
    specversion: '1.0',
    id: uuidv7({ msecs: now.getTime() }),
    source,
    type,
    time: now.toISOString(),
    datacontenttype: 'application/json',
    dataschema: dataSchemaUri(type),
    tenantid: ctx.tenantId,
    correlationid: ctx.correlationId,
    data
  }
  // Absent rather than null when unknown, as CloudEvents asks of optional attributes.
  if (ctx.userId !== undefined) envelope.userid = ctx.userId
  if (ctx.accountId !== undefined) envelope.accountid = ctx.accountId
  if (ctx.traceparent !== undefined) envelope.traceparent = ctx.traceparent
  return envelope
}
