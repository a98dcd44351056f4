import type { GatewayEvent } from '../event.js'

/** What a destination adds to every envelope it sends (from the routes file). */
export interface EnvelopeOptions {
  /** Who publishes: CloudEvents `source`, the Ocelot `source`; EVENT_SOURCE unless the destination names one. */
  source: string
  /** Ocelot `metadata.module`; the source when not set. */
  module?: string
}

/**
 * An envelope format a team's consumers already read. One module per profile; adding a format is
 * one file here, its test, and its line in index.ts.
 */
export interface EnvelopeProfile {
  readonly name: string
  /** Content type of the encoded envelope (AMQP content-type). */
  readonly contentType: string
  /**
   * The event wrapped in this envelope, as JSON text. `traceparent`: the trace context of the
   * message this envelope travels in, for profiles that carry one (default: the caller's).
   */
  encode (event: GatewayEvent, options: EnvelopeOptions, traceparent?: string): string
}
