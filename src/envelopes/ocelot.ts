import type { GatewayEvent } from '../event.js'
import type { EnvelopeOptions, EnvelopeProfile } from './profile.js'

/**
 * Seed 003's "Event Schema Standard" of the Ocelot platform: its consumers read
 * `event["organizationId"]`, `event["userId"]` and `event["data"]`.
 */
export interface OcelotEvent {
  id: string
  type: string
  source: string
  timestamp: string
  organizationId: string
  userId: string | null
  data: Record<string, unknown>
  metadata: { version: string, module: string }
}

export const OCELOT_SCHEMA_VERSION = '1.0.0'

export function toOcelotEvent (event: GatewayEvent, options: EnvelopeOptions): OcelotEvent {
  return {
    id: event.id,
    type: event.type,
    source: options.source,
    timestamp: event.time,
    organizationId: event.tenantId,
    userId: event.userId ?? null,
    data: event.data,
    metadata: { version: OCELOT_SCHEMA_VERSION, module: options.module ?? options.source }
  }
}

export const ocelot: EnvelopeProfile = {
  name: 'ocelot',
  contentType: 'application/json',
  encode: (event, options) => JSON.stringify(toOcelotEvent(event, options))
}
