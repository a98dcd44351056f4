import { readFileSync } from 'node:fs'
import { firstExample, type CatalogEntry } from '../catalog/index.js'
import { createEvent, type GatewayEvent } from '../envelopes/event.js'
import { compileText, type Value } from '../envelopes/value.js'
import { DEFAULT_ATTRIBUTES, DEFAULT_HEADERS, type FieldTemplate } from '../envelopes/message.js'
import { factsSchema } from '../envelopes/schema.js'
import { protectedEvent, type WireFormat } from '../envelopes/wire-format.js'
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

/**
 * An address rendered per event, as AsyncAPI writes one: each `{{expression}}` of a template (or
 * `{field}` of the catalog's routing key) a `{parameter}`, located in the payload when it is a
 * field of the data and the envelope carries the data.
 */
function parameterised (template: string, dataPath: string | undefined, catalog = false): { address: string, parameters?: Json } {
  const parameters: Json = {}
  const pattern = catalog ? /\{([^{}]+)\}/g : /\{\{\s*(.*?)\s*\}\}/g
  const address = template.replace(pattern, (_, expression: string) => {
    const field = catalog ? `data.${expression}` : expression
    const name = key(field).replace(/\./g, '_').replace(/_+/g, '_').replace(/^_|_$/g, '') || 'value'
    const simple = /^data\.([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)$/.exec(field)
    parameters[name] = {
      description: `Rendered per event from ${catalog ? `the data's ${expression}` : `{{${expression}}}`}`,
      ...(simple?.[1] === undefined || dataPath === undefined
        ? {}
        : { location: `$message.payload#${dataPath}/${simple[1].replace(/\./g, '/')}` })
    }
    return `{${name}}`
  })
  return Object.keys(parameters).length === 0 ? { address } : { address, parameters }
}

/** A key field's address: fixed for the type, else its template with parameters, else the destination's own. */
function addressField (format: WireFormat, field: 'routingKey' | 'busName' | 'topic', fallback: string, dataPath: string | undefined) {
  const fixed = format.fixed[field]
  if (fixed !== undefined) return { address: fixed }
  const template = format.described?.templates[field]
  return parameterised(template ?? fallback, dataPath)
}

/** The header or attribute table a destination's messages carry, compiled: declared, else the broker's defaults. */
function tableOf (destination: DestinationConfig, format: WireFormat): readonly [string, Value][] | undefined {
  const compile = (defaults: Record<string, FieldTemplate>) =>
    Object.entries(defaults).map(([name, t]): [string, Value] => [name, compileText(typeof t === 'string' ? t : '', format.scope)])
  switch (destination.broker) {
    case 'rabbitmq':
    case 'kafka': return format.described?.headers ?? compile(DEFAULT_HEADERS)
    case 'sqs': return format.described?.attributes ?? compile(DEFAULT_ATTRIBUTES)
    default: return undefined
  }
}

/**
 * Its schema as a consumer reads it: AMQP keeps a header's JSON type, Kafka headers and SQS
 * attribute values are text. What may be missing (or null, or an empty attribute) is not sent.
 */
function tableSchema (table: readonly [string, Value][], text: boolean): Json {
  const properties: Json = {}
  const required: string[] = []
  for (const [name, value] of table) {
    const facts = { ...value.facts, types: new Set([...value.facts.types].filter(t => t !== 'null')) }
    properties[name] = value.constant !== undefined
      ? { const: text ? String(value.constant.value) : value.constant.value }
      : text ? { type: 'string' } : factsSchema(facts)
    if (!value.facts.optional && !value.facts.types.has('null') && (!text || value.facts.nonEmpty)) required.push(name)
  }
  return { type: 'object', properties, ...(required.length === 0 ? {} : { required }) }
}

/** The example message's headers (attributes), rendered from the same table. */
function tableExample (table: readonly [string, Value][], event: GatewayEvent, text: boolean): Json {
  const out: Json = {}
  for (const [name, value] of table) {
    const v = value.get(event, undefined)
    if (v === undefined || v === null || (text && v === '')) continue
    out[name] = text ? String(v) : v
  }
  return out
}

interface Address {
  /** Channel key. */
  id: string
  address: string
  parameters?: Json
  bindings?: Json
  description: string
}

function addressOf (destination: DestinationConfig, format: WireFormat, entry: CatalogEntry): Address {
  const name = destination.name
  const dataPath = dataPathOf(format)
  switch (destination.broker) {
    case 'rabbitmq': {
      const at = format.described?.templates.routingKey === undefined && format.fixed.routingKey === undefined
        ? parameterised(entry.routingKey, dataPath, true)
        : addressField(format, 'routingKey', entry.routingKey, dataPath)
      return {
        id: key(`${name}.${at.address}`),
        ...at,
        description: `RabbitMQ: routing key \`${at.address}\` on the durable topic exchange \`${destination.exchange}\`; ` +
          'bind a queue with this key (or a pattern that matches it)',
        bindings: {
          amqp: {
            is: 'routingKey',
            exchange: { name: destination.exchange, type: 'topic', durable: true, autoDelete: false, vhost: vhostOf(destination.url) },
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
        description: `AWS SQS queue \`${queue}\``,
        bindings: { sqs: { queue: { name: queue, fifoQueue: queue.endsWith('.fifo') }, bindingVersion: '0.2.0' } }
      }
    }
    case 'eventbridge': {
      const at = addressField(format, 'busName', destination.busName, dataPath)
      return {
        id: key(`${name}.${at.address}`),
        ...at,
        description: `AWS EventBridge bus \`${at.address}\`: each message is a PutEvents entry; a rule matches it by its \`source\` ` +
          'and `detail-type` (the message\'s headers here), and its target receives the event with the envelope as `detail`'
      }
    }
    case 'kafka': {
      const at = addressField(format, 'topic', destination.topic, dataPath)
      return {
        id: key(`${name}.${at.address}`),
        ...at,
        description: `Kafka topic \`${at.address}\``,
        bindings: { kafka: { topic: at.address, bindingVersion: '0.5.0' } }
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

/** Where the envelope puts the data, as a JSON Pointer; undefined when it merges it (a spread) or leaves it out. */
function dataPathOf (format: WireFormat): string | undefined {
  const placed = format.placements.find(p => 'field' in p && p.field === 'data')
  return placed === undefined ? undefined : pointer(placed.path)
}

/** A JSON Pointer (RFC 6901) to a place in the envelope. */
function pointer (path: readonly (string | number)[]): string {
  return path.map(p => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('')
}

/** The AMQP virtual host a URL names ('/' when none). */
function vhostOf (url: string): string {
  const path = new URL(url).pathname
  return path.length > 1 ? decodeURIComponent(path.slice(1)) : '/'
}

function server (destination: DestinationConfig): Json {
  switch (destination.broker) {
    case 'rabbitmq': {
      // The host only: never the URL's credentials.
      const url = new URL(destination.url)
      return { host: url.host, protocol: url.protocol.replace(':', ''), description: `RabbitMQ (destination ${destination.name})` }
    }
    case 'sqs': {
      // The host only: never credentials a URL may carry.
      const host = /^https?:\/\/(?:[^@/]*@)?([^/]+)/.exec(destination.queueUrl)?.[1] ?? 'sqs.amazonaws.com'
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

/** Where the correlation id is: in the envelope when it carries it, else in a header the gateway fills with it. */
function correlationIdOf (format: WireFormat, headers: Json | undefined): Json | undefined {
  const placed = format.placements.find(p => 'field' in p && p.field === 'correlationId')
  if (placed !== undefined) {
    return { location: `$message.payload#${pointer(placed.path)}` }
  }
  const names = Object.keys((headers?.properties ?? {}) as Json)
  const header = names.find(h => h === 'x-correlation-id' || h === 'correlation-id')
  return header === undefined ? undefined : { location: `$message.header#/${header}` }
}

/** The message's headers as a schema, and as the example carries them. */
function headersOf (destination: DestinationConfig, format: WireFormat, event: GatewayEvent): { schema?: Json, example?: Json } {
  if (destination.broker === 'eventbridge') {
    // No binding in AsyncAPI: the entry's fields a rule matches, described as the message's headers.
    const message = format.message?.(event, undefined)
    const declared = format.described?.templates ?? {}
    const source = format.fixed.source ?? (declared.source === undefined ? destination.envelopeOptions.source : undefined)
    const detailType = format.fixed.detailType ?? (declared.detailType === undefined ? event.type : undefined)
    return {
      schema: {
        type: 'object',
        description: 'The PutEvents entry\'s fields a rule matches',
        properties: {
          source: source === undefined ? { type: 'string' } : { const: source },
          'detail-type': detailType === undefined ? { type: 'string' } : { const: detailType }
        },
        required: ['source', 'detail-type']
      },
      example: { source: message?.source ?? destination.envelopeOptions.source, 'detail-type': message?.detailType ?? event.type }
    }
  }
  const table = tableOf(destination, format)
  if (table === undefined) return {}
  const text = destination.broker !== 'rabbitmq'
  return { schema: tableSchema(table, text), example: tableExample(table, event, text) }
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
      // A destination that gets fields protected has a data schema of its own (them as strings, or gone).
      const dataId = format.protection === undefined ? key(type) : key(`${destination.name}.${type}.data`)
      schemas[dataId] ??= format.protection?.schema ?? entry.schema
      const raw = exampleEvent(entry)
      const event = protectedEvent(format, raw, false)
      const at = addressOf(destination, format, entry)
      const headers = headersOf(destination, format, event)
      const id = key(`${destination.name}.${type}`)
      const correlationId = correlationIdOf(format, headers.schema)
      messages[id] = {
        name: type,
        title: `${type} at ${destination.name}`,
        summary: entry.description,
        contentType: format.contentType,
        payload: format.schema(`#/components/schemas/${dataId}`),
        ...(headers.schema === undefined ? {} : { headers: headers.schema }),
        ...(correlationId === undefined ? {} : { correlationId }),
        examples: [{
          name: 'catalog-example',
          payload: JSON.parse(format.encode(event, undefined)),
          ...(headers.example === undefined ? {} : { headers: headers.example })
        }],
        ...(destination.broker === 'rabbitmq' ? { bindings: { amqp: { messageType: type, bindingVersion: '0.3.0' } } } : {}),
        ...(destination.broker === 'kafka' ? { bindings: { kafka: { key: { type: ['string', 'null'] }, bindingVersion: '0.5.0' } } } : {}),
        'x-envelope': format.envelope
      }
      const channel = channels[at.id] ??= {
        address: at.address,
        description: at.description,
        ...(at.parameters === undefined ? {} : { parameters: at.parameters }),
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
