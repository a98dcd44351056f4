import type { ProfileName } from '../envelopes/index.js'

/**
 * Where each envelope profile keeps what the tools look at. The profiles build envelopes; the
 * tools read them back, and this is the one place that knows the field names for reading
 * (test/cli/envelope-fields.test.ts holds it and the profiles together).
 */
export interface EnvelopeFields {
  id: string
  type: string
  time: string
  /** The event's data as it was published. */
  data: string
  /** Absent: the profile carries no tenant in the body (draft-genie); the transport's header does. */
  tenant?: string
  correlation?: string
  source?: string
}

export const ENVELOPE_FIELDS: { readonly [P in ProfileName]: EnvelopeFields } = {
  cloudevents: { id: 'id', type: 'type', time: 'time', data: 'data', tenant: 'tenantid', correlation: 'correlationid', source: 'source' },
  ocelot: { id: 'id', type: 'type', time: 'timestamp', data: 'data', tenant: 'organizationId', source: 'source' },
  'draft-genie': { id: 'eventId', type: 'eventType', time: 'timestamp', data: 'payload', correlation: 'correlationId' }
}
