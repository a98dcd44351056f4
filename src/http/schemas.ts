import { Type } from 'typebox'
import { ERRORS } from '../errors.js'

// Shapes of what the HTTP API answers; they feed the OpenAPI document and the serializers.
export const ProblemSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.Enum(Object.keys(ERRORS)),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() })))
}, { additionalProperties: true, description: 'RFC 9457 problem details with a stable EVG_* code' })

export const AcceptedSchema = Type.Object({
  id: Type.String({ description: 'The event id (UUIDv7); consumers drop duplicates by it' }),
  type: Type.String(),
  status: Type.Enum(['published', 'queued'], { description: 'published: the broker has it; queued: the durable outbox has it' }),
  correlationId: Type.String()
}, { description: 'Accepted: the broker (or the outbox) has the event' })

export const ContextHeadersSchema = Type.Object({
  'x-tenant-id': Type.Optional(Type.String({ description: 'Tenant (required; a UUID unless TENANT_ID_FORMAT=slug)', examples: ['7c9e6679-7425-40de-944b-e07fc1f90ae7'] })),
  'x-user-id': Type.Optional(Type.String({ description: 'User who caused the event', examples: ['user-123'] })),
  'x-account-id': Type.Optional(Type.String({ description: 'Account, when the tenant has several' })),
  'x-correlation-id': Type.Optional(Type.String({ description: 'Correlation id; generated when absent, echoed back' })),
  'idempotency-key': Type.Optional(Type.String({ description: 'A repeat with the same key and body gets the first answer; another body gets 409' })),
  traceparent: Type.Optional(Type.String({ description: 'W3C trace context, carried into the message' }))
})

export const errorResponses = {
  '4xx': ProblemSchema,
  '5xx': ProblemSchema
}
