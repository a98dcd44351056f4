import { readFileSync } from 'node:fs'
import { firstExample, type CatalogEntry } from '../catalog/index.js'
import { createEvent, type GatewayEvent } from '../envelopes/event.js'
import { compileText } from '../envelopes/value.js'
import type { FieldScope } from '../envelopes/fields.js'
import { DEFAULT_ATTRIBUTES, DEFAULT_HEADERS, type FieldTemplate, type WireMessage } from '../envelopes/message.js'
import type { WireFormat } from '../envelopes/wire-format.js'
import type { DestinationConfig } from '../routing/index.js'

// The consumers' contract: an AsyncAPI 3.0 document of what the running configuration sends,
// generated from the catalog and the routes (never kept by hand). One channel per address a
// destination sends to (a RabbitMQ routing key on its exchange, an SQS queue, an EventBridge bus,
// a Kafka topic, the local store's read-back), one message per type routed there, whose payload
// schema is the envelope that destination's consumers receive, and whose example is the catalog's
// example encoded by the destination's own wire format. Operations are the gateway's: `send`.

type Json = Record<string, unknown>

/** The gateway's version, from its package.json (src/ and dist/ are both a folder below it). */
export const GATEWAY_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as Json).version as string

/** The example event every message's example is made from: fixed, so the document is the same each time. */
const EXAMPLE_CONTEXT = { tenantId: '7c9e6679-7425-40de-944b-e07fc1f90ae7', userId: 'user-42', correlationId: 'corr-7f3a9c' }
const EXAMPLE_ID = '01890a5d-ac96-7000-8000-000000000000'
const EXAMPLE_TIME = Date.parse('2026-01-01T00:00:00.000Z')

export interface AsyncApiInput {
  entries: readonly CatalogEntry[]
  destinations: readonly DestinationConfig[]
  /** The gateway's version (package.json). */
  version: string
}

/** Component and channel keys: letters, digits, `.`, `-`, `_`. */
const key = (text: string) => text.replace(/[^A-Za-z0-9._-]/g, '_')

function exampleEvent (entry: CatalogEntry): GatewayEvent {
  const event = createEvent(entry, firstExample(entry) ?? {}, EXAMPLE_CONTEXT, undefined, EXAMPLE_TIME)
  event.id = EXAMPLE_ID
  return event
}

/** A message field's schema from its template: what the compiler knows of its value. */
function fieldSchema (template: FieldTemplate | number | boolean, scope: FieldScope): { schema: Json, optional: boolean } {
  if (typeof template !== 'string') return { schema: { const: template }, optional: false }
  const value = compileText(template, scope)
  if (value.constant !== undefined) return { schema: { const: value.constant.value }, optional: false }
  const types = [...value.facts.types]
  return { schema: { type: types.length === 1 ? types[0] : types }, optional: value.facts.optional }
}

/** Headers (or SQS attributes): the broker's defaults by their templates, or those the destination declares by an example. */
function headersSchema (
  defaults: Record<string, FieldTemplate>, declared: Record<string, unknown> | undefined, scope: FieldScope
): Json {
  const properties: Json = {}
  const required: string[] = []
  if (declared === undefined) {
    for (const [name, template] of Object.entries(defaults)) {
      const { schema, optional } = fieldSchema(template, scope)
      properties[name] = schema
      if (!optional) required.push(name)
    }
  } else {
    for (const [name, value] of Object.entries(declared)) {
      const v = typeof value === 'object' && value !== null && 'value' in value ? (value as { value: unknown }).value : value
      properties[name] = { type: typeof v === 'number' ? 'number' : typeof v === 'boolean' ? 'boolean' : 'string' }
    }
  }
  return { type: 'object', properties, ...(required.length === 0 ? {} : { required }) }
}

/** The headers (message attributes) of the example message, as a consumer reads them. */
function exampleHeaders (
  destination: DestinationConfig, scope: FieldScope, event: GatewayEvent, message: WireMessage | undefined
): Json | undefined {
  const render = (templates: Record<string, FieldTemplate>) => Object.fromEntries(Object.entries(templates)
    .map(([name, t]) => [name, compileText(typeof t === 'string' ? t : '', scope).get(event, undefined)])
    .filter(([, v]) => v !== undefined))
  switch (destination.broker) {
    case 'rabbitmq': return message?.headers ?? render(DEFAULT_HEADERS)
    case 'kafka': return message?.headers
    case 'sqs': return message?.attributes === undefined
      ? render(DEFAULT_ATTRIBUTES)
      : Object.fromEntries(Object.entries(message.attributes).map(([n, a]) => [n, a.value]))
    case 'eventbridge':
      return { source: message?.source ?? destination.envelopeOptions.source, 'detail-type': message?.detailType ?? event.type }
    case 'local': return undefined
  }
}

interface Address {
  /** Channel key. */
  id: string
  address: string
  bindings?: Json
  description: string
}

function addressOf (destination: DestinationConfig, event: GatewayEvent, message: WireMessage | undefined): Address {
  const name = destination.name
  switch (destination.broker) {
    case 'rabbitmq': {
      const routingKey = message?.routingKey ?? event.routingKey
      return {
        id: key(`${name}.${routingKey}`),
        address: routingKey,
        description: `RabbitMQ: routing key \`${routingKey}\` on the durable topic exchange \`${destination.exchange}\`; ` +
          'bind a queue with this key (or a pattern that matches it)',
        bindings: {
          amqp: {
            is: 'routingKey',
            exchange: { name: destination.exchange, type: 'topic', durable: true, autoDelete: false, vhost: '/' },
            bindingVersion: '0.3.0'
          }
        }
      }
    }
    case 'sqs': {
      const queue = destination.queueUrl.slice(destination.queueUrl.lastIndexOf('/') + 1)
      return {
        id: key(`${name}.${queue}`),
        address: queue,
        description: `AWS SQS queue \`${destination.queueUrl}\``,
        bindings: { sqs: { queue: { name: queue, fifoQueue: queue.endsWith('.fifo') }, bindingVersion: '0.2.0' } }
      }
    }
    case 'eventbridge': {
      const bus = message?.busName ?? destination.busName
      return {
        id: key(`${name}.${bus}`),
        address: bus,
        description: `AWS EventBridge bus \`${bus}\`: each message is a PutEvents entry; a rule matches it by its \`source\` and ` +
          '`detail-type` (the message\'s headers here), and its target receives the event with the envelope as `detail`'
      }
    }
    case 'kafka': {
      const topic = message?.topic ?? destination.topic
      return {
        id: key(`${name}.${topic}`),
        address: topic,
        description: `Kafka topic \`${topic}\` on ${destination.brokers}`,
        bindings: { kafka: { topic, bindingVersion: '0.5.0' } }
      }
    }
    case 'local':
      return {
        id: key(name),
        address: '/v1/events',
        description: 'The embedded local store: the calling tenant\'s events, read back with `GET /v1/events` (`?type=`, `?after=`)'
      }
  }
}

function server (destination: DestinationConfig): Json {
  switch (destination.broker) {
    case 'rabbitmq': {
      // The host only: never the URL's credentials.
      const url = new URL(destination.url)
      return { host: url.host, protocol: url.protocol.replace(':', ''), description: `RabbitMQ (destination ${destination.name})` }
    }
    case 'sqs': {
      const host = /^https?:\/\/([^/]+)/.exec(destination.queueUrl)?.[1] ?? 'sqs.amazonaws.com'
      return { host, protocol: 'sqs', description: `AWS SQS (destination ${destination.name})` }
    }
    case 'eventbridge': {
      const description = `AWS EventBridge (destination ${destination.name})`
      if (destination.region !== undefined) return { host: `events.${destination.region}.amazonaws.com`, protocol: 'https', description }
      return {
        host: 'events.{region}.amazonaws.com',
        protocol: 'https',
        description,
        variables: { region: { description: 'The AWS region: AWS_REGION where the gateway runs' } }
      }
    }
    case 'kafka': {
      const host = destination.brokers.split(',')[0] ?? destination.brokers
      return { host, protocol: 'kafka', description: `Kafka ${destination.brokers} (destination ${destination.name})` }
    }
    case 'local':
      return { host: 'localhost', protocol: 'http', description: 'This gateway\'s embedded store, read back over HTTP' }
  }
}

/** Where the correlation id is: in the envelope when it carries it, else in the headers. */
function correlationIdOf (format: WireFormat, headers: Json | undefined): Json | undefined {
  const placed = format.placements.find(p => 'field' in p && p.field === 'correlationId')
  if (placed !== undefined) return { location: `$message.payload#/${placed.path.join('/')}` }
  const header = Object.keys(headers ?? {}).find(h => /correlation/i.test(h))
  return header === undefined ? undefined : { location: `$message.header#/${header}` }
}

function headersOf (destination: DestinationConfig, scope: FieldScope, message: WireMessage | undefined, type: string): Json | undefined {
  switch (destination.broker) {
    case 'rabbitmq': return headersSchema(DEFAULT_HEADERS, message?.headers, scope)
    case 'kafka': return message?.headers === undefined ? undefined : headersSchema({}, message.headers, scope)
    case 'sqs': return headersSchema(DEFAULT_ATTRIBUTES, message?.attributes, scope)
    case 'eventbridge': return {
      type: 'object',
      description: 'The PutEvents entry\'s fields a rule matches',
      properties: {
        source: { const: message?.source ?? destination.envelopeOptions.source },
        'detail-type': message?.detailType === undefined ? { const: type } : { type: 'string' }
      }
    }
    case 'local': return undefined
  }
}

/** The AsyncAPI 3.0 document of what `destinations` send for `entries`. */
export function asyncApiDocument ({ entries, destinations, version }: AsyncApiInput): Json {
  const byType = new Map(entries.map(e => [e.type, e]))
  const schemas: Json = {}
  const messages: Json = {}
  const channels: Record<string, Json & { messages: Json }> = {}
  const operations: Json = {}
  const servers: Json = {}
  for (const destination of destinations) {
    servers[key(destination.name)] = server(destination)
    for (const [type, format] of destination.formats) {
      const entry = byType.get(type)
      if (entry === undefined) continue
      const scope: FieldScope = {
        type,
        schema: entry.schema,
        ...(entry.aggregate === undefined ? {} : { aggregate: entry.aggregate }),
        source: destination.envelopeOptions.source,
        module: destination.envelopeOptions.module ?? destination.envelopeOptions.source
      }
      schemas[key(type)] ??= entry.schema
      const event = exampleEvent(entry)
      const message = format.message?.(event, undefined)
      const at = addressOf(destination, event, message)
      const headers = headersOf(destination, scope, message, type)
      const example = exampleHeaders(destination, scope, event, message)
      const id = key(`${destination.name}.${type}`)
      messages[id] = {
        name: type,
        title: `${type} at ${destination.name}`,
        summary: entry.description,
        contentType: format.contentType,
        payload: format.schema(`#/components/schemas/${key(type)}`),
        ...(headers === undefined ? {} : { headers }),
        ...(correlationIdOf(format, example) === undefined ? {} : { correlationId: correlationIdOf(format, example) }),
        examples: [{
          name: 'catalog-example',
          payload: JSON.parse(format.encode(event, undefined)),
          ...(example === undefined ? {} : { headers: example })
        }],
        ...(destination.broker === 'rabbitmq' ? { bindings: { amqp: { messageType: type, bindingVersion: '0.3.0' } } } : {}),
        ...(destination.broker === 'kafka' ? { bindings: { kafka: { key: { type: 'string' }, bindingVersion: '0.5.0' } } } : {}),
        'x-envelope': format.envelope
      }
      const channel = channels[at.id] ??= {
        address: at.address,
        description: at.description,
        servers: [{ $ref: `#/servers/${key(destination.name)}` }],
        messages: {},
        ...(at.bindings === undefined ? {} : { bindings: at.bindings })
      }
      channel.messages[id] = { $ref: `#/components/messages/${id}` }
    }
  }
  for (const [id, channel] of Object.entries(channels)) {
    operations[`send.${id}`] = {
      action: 'send',
      channel: { $ref: `#/channels/${id}` },
      summary: `The gateway sends ${Object.keys(channel.messages).length === 1 ? 'this event type' : 'these event types'} here`,
      messages: Object.keys(channel.messages).map(m => ({ $ref: `#/channels/${id}/messages/${m}` }))
    }
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'event-gateway: the events it sends',
      version,
      description: 'What each destination\'s consumers receive: generated by the gateway from its event catalog and its routes ' +
        '(ROUTES_FILE, or BROKER), for the configuration it runs with. Each message\'s payload is the envelope as the ' +
        'destination sends it, its example the catalog\'s example encoded by that destination\'s own wire format. ' +
        'Publishers: the HTTP API is at /docs (OpenAPI).',
      license: { name: 'MIT' }
    },
    defaultContentType: 'application/json',
    servers,
    channels,
    operations,
    components: { schemas, messages }
  }
}
