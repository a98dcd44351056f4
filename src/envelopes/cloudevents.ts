import type { GatewayEvent } from '../event.js'
import type { EnvelopeProfile } from './profile.js'

/** CloudEvents 1.0, structured JSON mode, with the gateway's context extension attributes. */
export interface CloudEvent {
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

/** The URI a type's schema is known by; GET /v1/event-types/{type} serves it. */
export function dataSchemaUri (type: string): string {
  return `urn:event-gateway:event-types:${type}`
}

/**
 * `traceparent` is the CloudEvents distributed-tracing extension: the context of the message's
 * producer, the same one its transport carries.
 */
export function toCloudEvent (event: GatewayEvent, source: string, traceparent = event.traceparent): CloudEvent {
  const envelope: CloudEvent = {
    specversion: '1.0',
    id: event.id,
    source,
    type: event.type,
    time: event.time,
    datacontenttype: 'application/json',
    dataschema: dataSchemaUri(event.type),
    tenantid: event.tenantId,
    correlationid: event.correlationId,
    data: event.data
  }
  // Absent rather than null when unknown, as CloudEvents asks of optional attributes.
  if (event.userId !== undefined) envelope.userid = event.userId
  if (event.accountId !== undefined) envelope.accountid = event.accountId
  if (traceparent !== undefined) envelope.traceparent = traceparent
  return envelope
}

/** The default profile. */
export const cloudevents: EnvelopeProfile = {
  name: 'cloudevents',
  contentType: 'application/cloudevents+json',
  encode: (event, options, traceparent) => JSON.stringify(toCloudEvent(event, options.source, traceparent))
}
