import { Type } from 'typebox'
import { Details, Id, Segment, Strict, Text } from './fields.js'
import { defineEntries } from './types.js'

// Seed 002: the microservice framework's audit, notification and domain events.
export const AuditEventTypes = [
  'user_login', 'user_logout', 'permission_denied',
  'data_created', 'data_updated', 'data_deleted', 'data_accessed',
  'certificate_issued', 'certificate_revoked', 'security_violation',
  'service_started', 'service_error', 'configuration_changed'
] as const

export const NotificationEventTypes = [
  'user_welcome', 'user_password_reset', 'user_account_locked',
  'certificate_expiring', 'certificate_expired',
  'system_maintenance', 'system_alert'
] as const

export const AuditRecordedSchema = Type.Object({
  event_type: Type.Enum([...AuditEventTypes], { description: 'What kind of audit event' }),
  action: Id('What was done, e.g. create_user'),
  resource_type: Id('Kind of resource acted on'),
  resource_id: Type.Optional(Id('The resource acted on')),
  service_name: Type.Optional(Id('Service that recorded it')),
  outcome: Type.Optional(Type.Enum(['success', 'failure'], { description: 'Whether the action succeeded' })),
  operation_details: Type.Optional(Details('Extra facts; no secrets (never logged)'))
}, {
  ...Strict,
  examples: [{
    event_type: 'data_created',
    action: 'create_user',
    resource_type: 'user',
    resource_id: 'user-123',
    service_name: 'user-service',
    outcome: 'success',
    operation_details: { role: 'customer' }
  }]
})

export const NotificationRequestedSchema = Type.Object({
  event_type: Type.Enum([...NotificationEventTypes], { description: 'What kind of notification' }),
  recipient_type: Type.Enum(['user', 'group', 'role', 'email'], { description: 'How recipient_ids are to be read' }),
  recipient_ids: Type.Array(Id('A recipient'), { minItems: 1, maxItems: 1000 }),
  subject: Text('Subject line', 500),
  message: Text('Body text (never logged)', 20000),
  priority: Type.Optional(Type.Enum(['low', 'normal', 'high', 'urgent']))
}, {
  ...Strict,
  examples: [{
    event_type: 'user_welcome',
    recipient_type: 'user',
    recipient_ids: ['user-123'],
    subject: 'Welcome!',
    message: 'Your account has been created successfully.',
    priority: 'normal'
  }]
})

export const DomainEventSchema = Type.Object({
  aggregate_type: Segment('Kind of aggregate; becomes part of the routing key'),
  aggregate_id: Id('The aggregate instance'),
  event_type: Segment('What happened to it; becomes part of the routing key'),
  event_data: Details('The change itself (never logged)'),
  aggregate_version: Type.Optional(Type.Integer({ minimum: 0, description: 'Version after the change' })),
  service_name: Type.Optional(Type.String({
    pattern: '^[a-z][a-z0-9-]{0,63}$',
    description: 'Service that changed the aggregate, e.g. user-service: the {service} of its Kafka topic (seed 002)'
  }))
}, {
  ...Strict,
  examples: [{
    aggregate_type: 'user',
    aggregate_id: 'user-123',
    event_type: 'user_created',
    event_data: { role: 'customer', created_at: '2024-01-01T00:00:00Z' },
    aggregate_version: 1,
    service_name: 'user-service'
  }]
})

export const platform = defineEntries('platform', [
  {
    type: 'audit.recorded',
    description: 'An auditable action happened (compliance, security, debugging).',
    schema: AuditRecordedSchema,
    routingKey: 'audit.events',
    sensitive: ['operation_details']
  },
  {
    type: 'notification.requested',
    description: 'A user or group is to be notified.',
    schema: NotificationRequestedSchema,
    routingKey: 'notification.events',
    sensitive: ['message', 'recipient_ids']
  },
  {
    type: 'domain.event',
    description: 'A business change on an aggregate, routed by aggregate and event type.',
    schema: DomainEventSchema,
    routingKey: 'domain.{aggregate_type}.{event_type}',
    sensitive: ['event_data']
  }
])
