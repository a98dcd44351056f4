import type { JsonTemplate } from './template.js'

export { dataSchemaUri } from './fields.js'

// The envelopes the gateway knows by name, written in the same template language a routes file
// uses for its own. Compiled per type like any template; test/envelopes/profiles.test.ts holds
// their bytes to the hand-written encoders they replaced.

export interface Profile {
  contentType: string
  template: JsonTemplate
}

export const PROFILES = {
  /**
   * CloudEvents 1.0, structured JSON, with the gateway's context as extension attributes; optional
   * attributes are absent when unknown, as CloudEvents asks. `traceparent` and `tracestate` are the
   * distributed tracing extension: the message's producer context, the same one its transport carries.
   */
  cloudevents: {
    contentType: 'application/cloudevents+json',
    template: {
      specversion: '1.0',
      id: '{{id}}',
      source: '{{source}}',
      type: '{{type}}',
      time: '{{time}}',
      datacontenttype: 'application/json',
      dataschema: '{{dataschema}}',
      tenantid: '{{tenant}}',
      correlationid: '{{correlationId}}',
      data: '{{data}}',
      userid: '{{user}}',
      accountid: '{{account}}',
      traceparent: '{{traceparent}}',
      tracestate: '{{tracestate}}'
    }
  },
  /** Seed 003's "Event Schema Standard" of the Ocelot platform: its modules read organizationId, userId and data. */
  ocelot: {
    contentType: 'application/json',
    template: {
      id: '{{id}}',
      type: '{{type}}',
      source: '{{source}}',
      timestamp: '{{time}}',
      organizationId: '{{tenant}}',
      userId: '{{user ?? null}}',
      data: '{{data}}',
      metadata: { version: '1.0.0', module: '{{module}}' }
    }
  },
  /** Seed 004's TypeScript event shape on draft-genie.events: handlers dispatch on eventType and read payload. */
  'draft-genie': {
    contentType: 'application/json',
    template: {
      eventId: '{{id}}',
      eventType: '{{type}}',
      aggregateId: '{{aggregate.id}}',
      aggregateType: '{{aggregate.type}}',
      timestamp: '{{time}}',
      version: 1,
      correlationId: '{{correlationId}}',
      payload: '{{data}}'
    }
  }
} as const satisfies Record<string, Profile>

export type ProfileName = keyof typeof PROFILES

export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[]

export const DEFAULT_PROFILE: ProfileName = 'cloudevents'
