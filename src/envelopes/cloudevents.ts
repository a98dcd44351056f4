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

/** The parts of the envelope's text that are the same for every event of a type and source. */
const fixedParts = new Map<string, { source: string, schema: string }>()
function fixedOf (type: string, source: string): { source: string, schema: string } {
  const key = `${type}\0${source}`
  let fixed = fixedParts.get(key)
  if (fixed === undefined) {
    fixed = {
      source: `,"source":${JSON.stringify(source)},"type":${JSON.stringify(type)},`,
      schema: `,"datacontenttype":"application/json","dataschema":${JSON.stringify(dataSchemaUri(type))},`
    }
    fixedParts.set(key, fixed)
  }
  return fixed
}

/**
 * JSON.stringify(toCloudEvent(...)), byte for byte, without building the object first: the parts
 * fixed per type and source are made once, and only the event's own values are encoded.
 */
export function encodeCloudEvent (event: GatewayEvent, source: string, traceparent = event.traceparent): string {
  const fixed = fixedOf(event.type, source)
  let json = `{"specversion":"1.0","id":${JSON.stringify(event.id)}${fixed.source}"time":${JSON.stringify(event.time)}${fixed.schema}"tenantid":${JSON.stringify(event.tenantId)},"correlationid":${JSON.stringify(event.correlationId)},"data":${JSON.stringify(event.data)}`
  if (event.userId !== undefined) json += `,"userid":${JSON.stringify(event.userId)}`
  if (event.accountId !== undefined) json += `,"accountid":${JSON.stringify(event.accountId)}`
  if (traceparent !== undefined) json += `,"traceparent":${JSON.stringify(traceparent)}`
  return `${json}}`
}

/** The default profile. */
export const cloudevents: EnvelopeProfile = {
  name: 'cloudevents',
  contentType: 'application/cloudevents+json',
  encode: (event, options, traceparent) => encodeCloudEvent(event, options.source, traceparent)
}
