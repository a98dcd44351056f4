import { Type, type Static, type TProperties, type TSchema } from 'typebox'
import type { Ajv } from 'ajv'
import { PROFILE_NAMES } from '../envelopes/index.js'
import type { MESSAGE_FIELDS } from '../envelopes/message.js'
import { readJsonFile } from '../config/file.js'
import { expandReferences } from '../config/references.js'
import { ConfigError, messageOf } from '../errors.js'
import { toFieldErrors } from '../validation/index.js'
import { dottedPath } from '../validation/pointer.js'
import { PROTECT_ACTIONS } from '../protection/rules.js'

// ROUTES_FILE: destinations by name and the routes that send event types to them. The shape is
// part of the contract (docs/routes-file.md); tests hold the document and these schemas together.

export const DESTINATION_NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,63}$'
export const TYPE_PATTERN_PATTERN = '^(\\*|[a-z0-9][a-z0-9_.-]*\\*?)$'

// A text with {{ }} placeholders, or a function of one: {"$sha256": "{{type}}:{{data.call_id}}"}.
const FieldTemplateSchema = Type.Union([
  Type.String({ minLength: 1, maxLength: 4096 }),
  Type.Record(Type.String({ pattern: '^\\$' }), Type.String({ minLength: 1, maxLength: 4096 }), { minProperties: 1, maxProperties: 1 })
], { description: 'A text with {{ }} placeholders, or {"$sha256": "<text>"}' })
const optional = (description: string) => Type.Optional({ ...FieldTemplateSchema, description })

/** Headers (AMQP, Kafka record): names of 1 to 255 characters, values templates or literals, null to drop a default. */
const headers = (description: string) => Type.Optional(Type.Record(
  Type.String({ minLength: 1, maxLength: 255 }),
  Type.Union([FieldTemplateSchema, Type.Number(), Type.Boolean(), Type.Null()]),
  { description }
))

// What a message carries besides its body, per broker (src/envelopes/message.ts).
export const MESSAGE_SCHEMAS = {
  rabbitmq: Type.Object({
    routingKey: optional('Routing key; default the catalog\'s'),
    properties: Type.Optional(Type.Object({
      correlationId: optional('correlationId; default the correlation id'),
      type: optional('type; default the event type'),
      appId: optional('appId; default the source')
    }, { additionalProperties: false, description: 'AMQP properties; messageId is always the event id' })),
    headers: headers('Headers added to the default ones; null drops one')
  }, { additionalProperties: false, description: 'Message fields besides the body, as templates' }),
  sqs: Type.Object({
    groupId: optional('FIFO MessageGroupId; default the catalog\'s group field, else the tenant'),
    deduplicationId: optional('FIFO MessageDeduplicationId; default sha256 of tenant, type and dedupe key'),
    attributes: Type.Optional(Type.Record(
      Type.String({ minLength: 1, maxLength: 256 }),
      Type.Union([FieldTemplateSchema, Type.Null()]),
      { description: 'Message attributes added to the default ones; null drops one' }
    ))
  }, { additionalProperties: false, description: 'Message fields besides the body, as templates' }),
  eventbridge: Type.Object({
    busName: optional('EventBusName; default the destination\'s busName'),
    source: optional('Source; default the destination\'s source'),
    detailType: optional('DetailType; default the event type')
  }, { additionalProperties: false, description: 'Message fields besides the body, as templates' }),
  kafka: Type.Object({
    topic: optional('Topic; default the destination\'s topic'),
    key: optional('Record key; default the destination\'s key, else none'),
    headers: headers('Record headers added to the default ones; null drops one')
  }, { additionalProperties: false, description: 'Message fields besides the body, as templates' })
} as const satisfies { [K in keyof typeof MESSAGE_FIELDS]: TSchema }

/** A destination's wire format: its envelope (a profile's name or a template); its message fields are per broker. */
function wireFormat () {
  return {
    envelope: Type.Optional(Type.Union([
      Type.String({ minLength: 1, maxLength: 4096 }),
      Type.Record(Type.String(), Type.Unknown()),
      Type.Array(Type.Unknown())
    ], {
      description: `The envelope its consumers read: a profile (${PROFILE_NAMES.join(', ')}) ` +
        'or a JSON template with {{ }} placeholders; default cloudevents'
    })),
    contentType: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7e]+( [\\x21-\\x7e]+)*$',
      description: 'Of the envelope (AMQP content-type); default the profile\'s, application/json for a template'
    }))
  }
}

/** Per type pattern: a wire format of its own for some of the destination's types; what it leaves out is the destination's. */
function formats<P extends TProperties> (message: P) {
  return {
    formats: Type.Optional(Type.Array(Type.Object({
      types: Type.Array(Type.String({ pattern: TYPE_PATTERN_PATTERN, maxLength: 129 }), {
        minItems: 1,
        description: 'Type patterns, as in routes; the first entry that matches a type wins'
      }),
      ...wireFormat(),
      ...message
    }, { additionalProperties: false }), { minItems: 1, description: 'Wire formats per type pattern' }))
  }
}

const common = {
  source: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 256,
    format: 'uri-reference',
    description: 'Who publishes, as the envelope (and EventBridge Source) names it (a URI-reference); default EVENT_SOURCE'
  })),
  module: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 128,
    description: 'ocelot envelopes: metadata.module; default the source'
  })),
  delivery: Type.Optional(Type.Enum(['sync', 'spool'], {
    description: 'sync: answer once the broker has the event; spool: once the outbox has it, the relay publishes it; default DELIVERY_MODE'
  })),
  protect: Type.Optional(Type.Record(
    Type.String({ pattern: TYPE_PATTERN_PATTERN, maxLength: 129 }),
    Type.Record(
      Type.String({ pattern: '^/', minLength: 2, maxLength: 1024 }),
      Type.Enum(PROTECT_ACTIONS),
      { minProperties: 1, description: 'JSON Pointer into the data -> drop, hash or encrypt' }
    ),
    { minProperties: 1, description: 'Per type pattern, the data fields this destination gets protected (docs/protection.md)' }
  ))
}
const aws = {
  region: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'AWS region; default AWS_REGION' })),
  endpoint: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 2048,
    description: 'Endpoint URL (emulators, VPC endpoints); default the SDK\'s'
  }))
}
const strict = { additionalProperties: false } as const

export const DESTINATION_SCHEMAS = {
  rabbitmq: Type.Object({
    broker: Type.Literal('rabbitmq'),
    url: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'amqp:// or amqps:// URL; default AMQP_URL. Destinations with the same URL share one connection'
    })),
    exchange: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: '^(?!amq\\.)',
      description: 'Durable topic exchange (not amq.*, which RabbitMQ reserves)'
    }),
    alternateExchange: Type.Optional(Type.String({
      maxLength: 255,
      description: 'Keeps unroutable events; default <exchange>.unrouted, empty to refuse them (502)'
    })),
    ...common,
    ...wireFormat(),
    message: Type.Optional(MESSAGE_SCHEMAS.rabbitmq),
    ...formats({ message: Type.Optional(MESSAGE_SCHEMAS.rabbitmq) })
  }, strict),
  sqs: Type.Object({
    broker: Type.Literal('sqs'),
    queueUrl: Type.String({ minLength: 1, maxLength: 2048, description: 'The queue; FIFO when it ends in .fifo' }),
    maxMessageBytes: Type.Optional(Type.Integer({
      minimum: 1024,
      maximum: 1048576,
      description: 'Largest message, body + attributes; default SQS_MAX_MESSAGE_BYTES'
    })),
    ...aws,
    ...common,
    ...wireFormat(),
    message: Type.Optional(MESSAGE_SCHEMAS.sqs),
    ...formats({ message: Type.Optional(MESSAGE_SCHEMAS.sqs) })
  }, strict),
  eventbridge: Type.Object({
    broker: Type.Literal('eventbridge'),
    busName: Type.String({ minLength: 1, maxLength: 256, description: 'The event bus' }),
    maxEntryBytes: Type.Optional(Type.Integer({
      minimum: 1024,
      maximum: 1048576,
      description: 'Largest PutEvents entry; default EVENTBRIDGE_MAX_ENTRY_BYTES'
    })),
    ...aws,
    ...common,
    ...wireFormat(),
    message: Type.Optional(MESSAGE_SCHEMAS.eventbridge),
    ...formats({ message: Type.Optional(MESSAGE_SCHEMAS.eventbridge) })
  }, strict),
  kafka: Type.Object({
    broker: Type.Literal('kafka'),
    brokers: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 4096,
      pattern: '^[^\\s,]+:[0-9]{1,5}(,[^\\s,]+:[0-9]{1,5})*$',
      description: 'Bootstrap brokers, host:port[,host:port…]; default KAFKA_BROKERS. ' +
        'Destinations with the same list (and client id and compression) share one producer'
    })),
    topic: { ...FieldTemplateSchema, description: 'Topic, a template of the event: "marty.audit.events", "marty.{{data.event_type}}"' },
    key: optional('Record key, a template of the event; default none (records spread over partitions)'),
    clientId: Type.Optional(Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[A-Za-z0-9._-]+$',
      description: 'Kafka client.id; default event-gateway'
    })),
    compression: Type.Optional(Type.Enum(['none', 'gzip', 'snappy', 'lz4', 'zstd'], {
      description: 'Record batch compression; default none'
    })),
    cloudevents: Type.Optional(Type.Enum(['binary', 'structured'], {
      description: 'With the cloudevents envelope: binary (ce_* headers, the data as the value) or structured; default binary'
    })),
    ...common,
    ...wireFormat(),
    message: Type.Optional(MESSAGE_SCHEMAS.kafka),
    ...formats({ message: Type.Optional(MESSAGE_SCHEMAS.kafka) })
  }, strict),
  local: Type.Object({
    broker: Type.Literal('local'),
    ...common,
    ...wireFormat(),
    ...formats({})
  }, strict)
} as const satisfies Record<string, TSchema>

export type BrokerKind = keyof typeof DESTINATION_SCHEMAS
export const BROKER_KINDS = Object.keys(DESTINATION_SCHEMAS) as BrokerKind[]

export type DestinationSpec = { [K in BrokerKind]: Static<(typeof DESTINATION_SCHEMAS)[K]> }[BrokerKind]

export const RouteSchema = Type.Object({
  types: Type.Array(Type.String({ pattern: TYPE_PATTERN_PATTERN, maxLength: 129 }), {
    minItems: 1,
    description: 'Type patterns: "call.*", "survey.completed", "*"'
  }),
  to: Type.Array(Type.String({ pattern: DESTINATION_NAME_PATTERN }), { minItems: 1, description: 'Destination names; several = fan-out' })
}, strict)

export const RoutesFileSchema = Type.Object({
  destinations: Type.Record(
    Type.String({ pattern: DESTINATION_NAME_PATTERN }),
    Type.Object({ broker: Type.Enum(BROKER_KINDS) }, { additionalProperties: true }),
    { minProperties: 1 }
  ),
  routes: Type.Array(RouteSchema, { minItems: 1 })
}, strict)

export interface RoutesFile {
  destinations: Record<string, DestinationSpec>
  routes: Static<typeof RouteSchema>[]
}

/** Whether `value` is valid by `schema`; when not, its problems are added to `problems`, each naming its field. */
function conforms<S extends TSchema> (ajv: Ajv, schema: S, value: unknown, prefix: string, problems: string[]): value is Static<S> {
  const check = ajv.compile<Static<S>>(schema)
  if (check(value)) return true
  problems.push(...toFieldErrors(check.errors).map(e => `${prefix}${dottedPath(e.path) || '(root)'}: ${e.message}`))
  return false
}

/**
 * Reads and checks a routes file. Every problem is reported at once, each naming the file and the
 * field; `${NAME}` references are expanded in destination strings.
 */
export function readRoutesFile (path: string, ajv: Ajv, env: Record<string, string | undefined>): RoutesFile {
  function fail (problems: string[]): never {
    throw new ConfigError(`ROUTES_FILE: ${path} is not valid:\n  ${problems.join('\n  ')}`)
  }
  const file = readJsonFile('ROUTES_FILE', path)
  const problems: string[] = []
  if (!conforms(ajv, RoutesFileSchema, file, '', problems)) fail(problems)
  const destinations: Record<string, DestinationSpec> = {}
  const namePattern = new RegExp(DESTINATION_NAME_PATTERN)
  for (const [name, raw] of Object.entries(file.destinations)) {
    if (!namePattern.test(name)) {
      problems.push(`destinations.${name}: a destination name must match ${DESTINATION_NAME_PATTERN}`)
      continue
    }
    // Expanded first, then checked: what is validated is what the gateway will use.
    const expanded: Record<string, unknown> = {}
    let unexpanded = false
    for (const [field, value] of Object.entries<unknown>(raw)) {
      const where = `destinations.${name}.${field}`
      try {
        const result = typeof value === 'string' ? expandReferences(value, env, where) : value
        expanded[field] = result
        if (typeof result === 'string' && result.includes('${')) problems.push(`${where}: has a \${ without its closing }`)
      } catch (err) {
        problems.push(messageOf(err))
        unexpanded = true
      }
    }
    const valid = conforms(ajv, DESTINATION_SCHEMAS[raw.broker], expanded, `destinations.${name}.`, problems)
    if (valid && !unexpanded) destinations[name] = expanded
  }
  const locals = Object.entries(destinations).filter(([, d]) => d.broker === 'local').map(([n]) => n)
  if (locals.length > 1) problems.push(`destinations: at most one local destination (the embedded store); found ${locals.join(', ')}`)
  file.routes.forEach((route, i) => {
    for (const name of route.to) {
      if (!Object.hasOwn(file.destinations, name)) problems.push(`routes.${i}.to: no destination named '${name}'`)
    }
  })
  if (problems.length > 0) fail(problems)
  return { destinations, routes: file.routes }
}
