import type { FieldError } from '../errors.js'
import type { Protection } from '../protection/rules.js'
import type { GatewayEvent } from './event.js'
import { TemplateError } from './expression.js'
import type { FieldScope } from './fields.js'
import {
  compileMessage, type KeyField, type MessageBroker, type MessageDescription, type MessageSpec, type WireMessage
} from './message.js'
import { PROFILES, type ProfileName } from './profiles.js'
import { envelopeSchema } from './schema.js'
import { compileTemplate, type JsonTemplate, type Placement } from './template.js'

/**
 * What one destination's consumers read of one event type: the body (its envelope) and the
 * message's other fields. Compiled at start; per message it only writes.
 */
export interface WireFormat {
  /** `cloudevents`, `ocelot`, `draft-genie`, or `template` (declared in the routes file). */
  readonly envelope: string
  readonly contentType: string
  encode (event: GatewayEvent, traceparent?: string): string
  /** The message's declared fields for this event; absent when the destination declares none. */
  readonly message?: (event: GatewayEvent, traceparent: string | undefined) => WireMessage
  /** The envelope carries the message's trace context, so no other destination's message has the same body. */
  readonly usesTraceparent: boolean
  /** Field errors for an event whose message its broker would refuse; absent when the start proved none can be. */
  readonly check?: (event: GatewayEvent) => FieldError[] | undefined
  /** Where the envelope puts the event's fields (verify and tail read them back). */
  readonly placements: readonly Placement[]
  /** The declared message fields that are the same for every event of the type (a rule's source and detail type). */
  readonly fixed: Partial<Record<KeyField, string>>
  /** Every message key field the destination declares for the type, fixed or not. */
  readonly declared: ReadonlySet<KeyField>
  /** The JSON Schema of the envelope, the type's data schema referenced at `dataRef` (the AsyncAPI document). */
  readonly schema: (dataRef: string) => object
  /** The declared message fields' templates and compiled header and attribute tables (the AsyncAPI document). */
  readonly described?: MessageDescription
  /** What a template reads is compiled against: the type and the destination (the AsyncAPI document). */
  readonly scope: FieldScope
  /**
   * The data fields the destination gets protected: every message field and the envelope are made
   * from `protectedEvent(format, event)`, and `scope.schema` is what that event's data is.
   */
  readonly protection?: Protection
}

/**
 * The event as a destination gets it: the data protected by its rules (`protect` in the routes
 * file), else the event itself. `counted`: false for what is not sent, which the metrics skip.
 */
export function protectedEvent (format: Pick<WireFormat, 'protection'>, event: GatewayEvent, counted = true): GatewayEvent {
  const protection = format.protection
  if (protection === undefined) return event
  const data = protection.apply(event.data, event, counted)
  return data === event.data ? event : { ...event, data }
}

/** What a destination adds to every envelope it sends (from the routes file). */
export interface EnvelopeOptions {
  /** Who publishes: CloudEvents `source`, the Ocelot `source`; EVENT_SOURCE unless the destination names one. */
  source: string
  /** Ocelot `metadata.module`; the source when not set. */
  module?: string
}

/** An envelope as a routes file names it: a profile's name, or a template. */
export type EnvelopeSpec = ProfileName | JsonTemplate

const TEMPLATE_CONTENT_TYPE = 'application/json'

/** A string is a profile's name unless it has placeholders (`"{{data}}"`: the data alone). */
function isProfileName (envelope: EnvelopeSpec): envelope is ProfileName {
  return typeof envelope === 'string' && !envelope.includes('{{')
}

/**
 * Compiled built-in profiles, per type schema, shared by destinations with the same source and
 * module: fan-out then encodes once for them all.
 */
const builtins = new WeakMap<object, Map<string, ReturnType<typeof compileTemplate>>>()

export function compileEnvelope (
  envelope: EnvelopeSpec,
  scope: FieldScope
): ReturnType<typeof compileTemplate> & { name: string, contentType: string } {
  if (!isProfileName(envelope)) return { ...compileTemplate(envelope, scope), name: 'template', contentType: TEMPLATE_CONTENT_TYPE }
  const profile = Object.hasOwn(PROFILES, envelope) ? PROFILES[envelope] : undefined
  if (profile === undefined) {
    throw new TemplateError(`'${envelope}' is not an envelope profile (the profiles: ${Object.keys(PROFILES).join(', ')}); ` +
      'a template is JSON with {{ }} placeholders')
  }
  const aggregate = `${scope.aggregate?.type ?? ''}\0${scope.aggregate?.idField ?? ''}`
  const key = `${envelope}\0${scope.type}\0${scope.source}\0${scope.module}\0${aggregate}\0${scope.dataSchema ?? ''}`
  let forSchema = builtins.get(scope.schema)
  if (forSchema === undefined) {
    forSchema = new Map()
    builtins.set(scope.schema, forSchema)
  }
  let compiled = forSchema.get(key)
  if (compiled === undefined) {
    compiled = compileTemplate(profile.template, scope)
    forSchema.set(key, compiled)
  }
  return { ...compiled, name: envelope, contentType: profile.contentType }
}

/**
 * One destination's wire format for one type. Errors are TemplateErrors starting with the field
 * they are in (`envelope: …`, `message.groupId: …`); the caller adds the file and destination.
 */
export function compileWireFormat (
  spec: { envelope: EnvelopeSpec, contentType?: string, message?: MessageSpec },
  broker: MessageBroker | 'local',
  scope: FieldScope
): WireFormat {
  // Both are compiled, so that a problem in each is reported at once (one line each).
  const problems: string[] = []
  const attempt = <T>(compile: () => T): T | undefined => {
    try {
      return compile()
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err
      problems.push(err.message)
      return undefined
    }
  }
  const envelope = attempt(() => prefixed('envelope', () => compileEnvelope(spec.envelope, scope)))
  const messageSpec = spec.message
  const message = messageSpec === undefined || broker === 'local'
    ? undefined
    : attempt(() => prefixed('message', () => compileMessage(broker, messageSpec, scope)))
  if (envelope === undefined || problems.length > 0) throw new TemplateError(problems.join('\n'))
  return {
    envelope: envelope.name,
    contentType: spec.contentType ?? envelope.contentType,
    encode: envelope.encode,
    usesTraceparent: envelope.reads.has('traceparent'),
    placements: envelope.placements,
    fixed: message?.fixed ?? {},
    declared: message?.declared ?? new Set(),
    schema: dataRef => envelopeSchema(isProfileName(spec.envelope) ? PROFILES[spec.envelope].template : spec.envelope, scope, dataRef),
    scope,
    ...(message === undefined ? {} : { message: message.render, described: message.described }),
    ...(message?.check === undefined ? {} : { check: message.check })
  }
}

/** `envelope.data.x: …`, `message.groupId …`: the path of the field in the destination. */
function prefixed<T> (field: 'envelope' | 'message', compile: () => T): T {
  try {
    return compile()
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err
    // `at data.x: why` -> `envelope.data.x: why`
    const nested = /^at ([^:]*): /
    if (nested.test(err.message)) throw new TemplateError(err.message.replace(nested, `${field}.$1: `))
    throw new TemplateError(field === 'message' ? `message.${err.message}` : `envelope: ${err.message}`)
  }
}
