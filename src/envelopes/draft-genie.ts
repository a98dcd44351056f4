import type { GatewayEvent } from '../event.js'
import type { EnvelopeProfile } from './profile.js'

/**
 * Seed 004's TypeScript event shape on `draft-genie.events`: handlers read
 * `eventData.payload.speaker_id` and dispatch on `eventType`.
 */
export interface DraftGenieEvent {
  eventId: string
  eventType: string
  aggregateId: string
  aggregateType: string
  timestamp: string
  version: number
  correlationId: string
  payload: Record<string, unknown>
}

export const DRAFT_GENIE_EVENT_VERSION = 1

/**
 * The aggregate comes from the catalog entry (`speaker.onboarded`: Speaker, `speaker_id`); a type
 * without one is its own aggregate: the type's first word, capitalised, and the event id.
 */
export function toDraftGenieEvent (event: GatewayEvent): DraftGenieEvent {
  const prefix = event.type.split('.')[0] ?? event.type
  return {
    eventId: event.id,
    eventType: event.type,
    aggregateId: event.aggregate?.id ?? event.id,
    aggregateType: event.aggregate?.type ?? prefix.charAt(0).toUpperCase() + prefix.slice(1),
    timestamp: event.time,
    version: DRAFT_GENIE_EVENT_VERSION,
    correlationId: event.correlationId,
    payload: event.data
  }
}

export const draftGenie: EnvelopeProfile = {
  name: 'draft-genie',
  contentType: 'application/json',
  encode: event => JSON.stringify(toDraftGenieEvent(event))
}
