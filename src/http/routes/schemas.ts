import { Type, type TObject } from 'typebox'
import type { Config } from '../../config/index.js'
import { ERRORS } from '../../errors.js'

// Shapes of what the HTTP API answers; they feed the OpenAPI document and the serializers.
// A shape with an `x-component` name is listed once in the document, under components.schemas,
// and referred to from every operation that answers it (src/http/routes/openapi.ts); Ajv and the
// serializers ignore the keyword.

export const FieldErrorSchema = Type.Object({
  path: Type.String({ description: 'JSON Pointer to the offending value, e.g. `/events/1/data/outcome`' }),
  message: Type.String()
}, { 'x-component': 'FieldError' })

export const ProblemSchema = Type.Object({
  type: Type.String({ description: '`urn:event-gateway:error:<code>`' }),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.Enum(Object.keys(ERRORS), { description: 'Stable; what clients and dashboards branch on' }),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(FieldErrorSchema, { description: 'The first field errors (validation)' })),
  errorsOmitted: Type.Optional(Type.Integer({ minimum: 1, description: 'How many more field errors there were' }))
}, { additionalProperties: true, description: 'RFC 9457 problem details with a stable EVG_* code', 'x-component': 'Problem' })

const PublishedSchema = Type.Enum(['published', 'queued'], {
  description: 'published: every destination of the type has the event; ' +
    'queued: the outbox of a spooled destination has it on disk and its relay will publish it (other destinations have it)'
})

export const AcceptedSchema = Type.Object({
  id: Type.String({ description: 'The event id (UUIDv7) every envelope carries; consumers drop duplicates by it' }),
  type: Type.String(),
  status: PublishedSchema,
  correlationId: Type.String()
}, {
  description: 'Accepted: every destination of the type has the event, or (queued) has it or will get it from the outbox',
  'x-component': 'Accepted'
})

export const BatchAcceptedSchema = Type.Object({
  id: Type.String({ description: 'The event id (UUIDv7)' }),
  type: Type.String(),
  status: PublishedSchema
}, { 'x-component': 'BatchAccepted' })

export const BatchResultsSchema = Type.Object({
  results: Type.Array(Type.Union([
    BatchAcceptedSchema,
    Type.Object({ error: ProblemSchema }, { 'x-component': 'BatchRefused' })
  ], { 'x-component': 'BatchResult' }), { description: 'In request order' })
}, { description: 'One result per event, in request order', 'x-component': 'BatchResults' })

// The envelopes GET /v1/events reads back, as the local destination stored them: one per
// profile (src/envelopes/). test/http/routes/openapi.test.ts checks each against what its profile writes.
const EventData = Type.Record(Type.String(), Type.Unknown(), {
  description: 'The event\'s data: the payload of its type (`<Type>Data` in components.schemas)'
})

export const CloudEventSchema = Type.Object({
  specversion: Type.Literal('1.0'),
  id: Type.String({ description: 'The event id (UUIDv7)' }),
  source: Type.String({ description: 'EVENT_SOURCE, or the destination\'s source' }),
  type: Type.String(),
  time: Type.String({ format: 'date-time' }),
  datacontenttype: Type.Literal('application/json'),
  dataschema: Type.String({ description: '`urn:event-gateway:event-types:<type>`' }),
  tenantid: Type.String(),
  userid: Type.Optional(Type.String()),
  accountid: Type.Optional(Type.String()),
  correlationid: Type.String(),
  traceparent: Type.Optional(Type.String()),
  tracestate: Type.Optional(Type.String()),
  data: EventData
}, {
  description: 'Profile `cloudevents`: CloudEvents 1.0, structured JSON, with the context extension attributes',
  'x-component': 'CloudEvent'
})

export const OcelotEventSchema = Type.Object({
  id: Type.String({ description: 'The event id (UUIDv7)' }),
  type: Type.String(),
  source: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  organizationId: Type.String({ description: 'The tenant' }),
  userId: Type.Union([Type.String(), Type.Null()]),
  data: EventData,
  metadata: Type.Object({ version: Type.String(), module: Type.String() })
}, { description: 'Profile `ocelot`: the Ocelot platform\'s Event Schema Standard', 'x-component': 'OcelotEvent' })

export const DraftGenieEventSchema = Type.Object({
  eventId: Type.String({ description: 'The event id (UUIDv7)' }),
  eventType: Type.String(),
  aggregateId: Type.String(),
  aggregateType: Type.String(),
  timestamp: Type.String({ format: 'date-time' }),
  version: Type.Integer(),
  correlationId: Type.String(),
  payload: EventData
}, { description: 'Profile `draft-genie`: the Draft Genie services\' event shape', 'x-component': 'DraftGenieEvent' })

export const EventsPageSchema = Type.Object({
  events: Type.Array(Type.Union([CloudEventSchema, OcelotEventSchema, DraftGenieEventSchema], {
    description: 'In the envelope of the local destination: its profile\'s, as here, ' +
      'or the shape of the template ROUTES_FILE declares for it',
    'x-component': 'StoredEvent'
  }), { description: 'Oldest first' }),
  next: Type.Integer({ minimum: 0, description: 'The cursor for the next page: send it as `after`' })
}, { 'x-component': 'EventsPage' })

const header = (description: string, examples?: string[]) => Type.String({ description, ...(examples === undefined ? {} : { examples }) })

/**
 * The context headers of the event routes, and the body's Content-Encoding. X-Tenant-ID is
 * required unless ALLOW_MOCK_CONTEXT: the context hook refuses a request without it (400
 * EVG_BAD_CONTEXT) before this schema is checked, so marking it required changes the document,
 * not the answer.
 */
export function contextHeaders (config: Pick<Config, 'ALLOW_MOCK_CONTEXT'>): TObject {
  const mock = config.ALLOW_MOCK_CONTEXT ? ' (MOCK_TENANT_ID when absent: ALLOW_MOCK_CONTEXT is on)' : ''
  const tenant = header(`Tenant: a UUID unless TENANT_ID_FORMAT=slug${mock}`, ['7c9e6679-7425-40de-944b-e07fc1f90ae7'])
  return Type.Object({
    'x-tenant-id': config.ALLOW_MOCK_CONTEXT ? Type.Optional(tenant) : tenant,
    'x-user-id': Type.Optional(header('User who caused the event: 1 to 128 visible ASCII characters', ['user-123'])),
    'x-account-id': Type.Optional(header('Account, when the tenant has several: 1 to 128 visible ASCII characters')),
    'x-correlation-id': Type.Optional(header('Correlation id: 1 to 128 visible ASCII characters; generated when absent, echoed back')),
    'idempotency-key': Type.Optional(
      header('A repeat with the same key and body within 24 hours gets the first answer; another body gets 409')
    ),
    traceparent: Type.Optional(header('W3C trace context, carried into the envelope; an invalid one is dropped')),
    tracestate: Type.Optional(header('W3C trace state, read beside a valid traceparent only and carried on with it; ' +
      'invalid members are dropped, a value over 512 characters whole')),
    // Read by src/http/hooks/content-encoding.ts; documented with the publishing routes, whose bodies can be large.
    'content-encoding': Type.Optional(header(
      'The body\'s compression: `gzip` (or `x-gzip`), `deflate` (the zlib format), `br`, or `zstd` (on Node.js 22.15 and later); ' +
      '`identity` or none: as it is. Case-insensitive, one coding at most. BODY_LIMIT_BYTES applies to the decoded body (413); ' +
      'a stream that does not decode is 400; another coding, or several, 415 with Accept-Encoding naming those the gateway decodes'
      // No example: Swagger UI's Try it out would send it with the uncompressed example body (400).
    ))
  })
}

/** The context headers reading back uses: the tenant whose events are read, and the correlation id. */
export function readHeaders (config: Pick<Config, 'ALLOW_MOCK_CONTEXT'>): TObject {
  return Type.Pick(contextHeaders(config), ['x-tenant-id', 'x-correlation-id'])
}

/** A problem answer as it is served: application/problem+json (src/http/problems/index.ts). */
const problems = (description: string) => ({ description, content: { 'application/problem+json': { schema: ProblemSchema } } })

/** Problems any route may answer (a malformed request, headers too large, an internal error). */
export const problemResponses = {
  '4xx': problems('Refused: the request cannot succeed as it is; `code` says why'),
  '5xx': problems('Not handled: the gateway failed, or a broker refused the event; `code` says which')
}

/** Problems of the event routes, which also shed load and wait for brokers. */
export const eventProblemResponses = {
  ...problemResponses,
  503: problems('Not now: the gateway is shedding load, or a destination cannot take the event; send the request again after Retry-After')
}

/** Problems of the routes that publish: a key held by another request, a tenant over its rate limit. */
export const publishProblemResponses = {
  ...eventProblemResponses,
  409: problems('The Idempotency-Key was used with another request (EVG_IDEMPOTENCY_CONFLICT), ' +
    'or the request holding it is still publishing (EVG_IDEMPOTENCY_IN_PROGRESS: send it again after Retry-After)'),
  429: problems('The tenant is over its rate limit (EVG_RATE_LIMITED): send the request again after Retry-After')
}

/**
 * Who may call an event route: a bearer API key when the gateway has API_KEYS_FILE; without it
 * the key is optional (and ignored), which `{}` says.
 */
export function eventSecurity (keysRequired: boolean): { apiKey: string[] }[] | [{ apiKey: string[] }, Record<string, never>] {
  return keysRequired ? [{ apiKey: [] }] : [{ apiKey: [] }, {}]
}

/** Routes that need no key: the catalog, health, metrics. */
export const noSecurity: [] = []
