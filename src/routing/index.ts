import type { Ajv } from 'ajv'
import { alternateExchange, type Config } from '../config/index.js'
import type { EnvelopeOptions } from '../envelopes/index.js'
import type { WireFormat } from '../envelopes/wire-format.js'
import { ConfigError } from '../errors.js'
import { ProtectionKeys } from '../protection/keys.js'
import { patternMatcher } from './patterns.js'
import { compileFormats, type TypeInfo } from './formats.js'
import { readRoutesFile, type RoutesFile } from './routes-file.js'

export type { BrokerKind } from './routes-file.js'

interface Common {
  /** The destination's name: from the routes file, or the broker's name without one. */
  name: string
  /** The envelope's profile name, or `template` (for logs and tools). */
  envelope: string
  envelopeOptions: EnvelopeOptions
  /** What its consumers read of each type routed to it: envelope and message fields, compiled. */
  formats: ReadonlyMap<string, WireFormat>
  /** sync: the answer waits for the broker; spool: for the outbox, and the relay publishes. */
  mode: DeliveryMode
}

export type DeliveryMode = 'sync' | 'spool'

export type KafkaCompression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd'

/** A destination with every default filled in: what a broker adapter is built from. */
export type DestinationConfig = Common & (
  | { broker: 'rabbitmq', url: string, exchange: string, alternateExchange?: string }
  | { broker: 'sqs', queueUrl: string, maxMessageBytes: number, region?: string, endpoint?: string }
  | { broker: 'eventbridge', busName: string, maxEntryBytes: number, region?: string, endpoint?: string }
  | { broker: 'kafka', brokers: string, topic: string, clientId: string, compression: KafkaCompression }
  | { broker: 'local' }
)

export interface Routing {
  /** The destinations some route uses, in the order the file names them. */
  destinations: DestinationConfig[]
  /** Destination names per catalog type (the first matching route's `to`). */
  routes: Map<string, string[]>
  /** Things worth a warning at start: destinations no route uses, routes that match nothing. */
  warnings: string[]
  /** PROTECTION_KEYS_FILE's keys, when it is set. */
  keys?: ProtectionKeys
}

/** Without ROUTES_FILE: one destination named after BROKER, from today's variables, for every type. */
export function defaultRoutesFile (config: Config): RoutesFile {
  const common = { source: config.EVENT_SOURCE }
  const ae = alternateExchange(config)
  const destination = (() => {
    switch (config.BROKER) {
      case 'rabbitmq':
        return { broker: 'rabbitmq' as const, url: config.AMQP_URL, exchange: config.AMQP_EXCHANGE, alternateExchange: ae ?? '', ...common }
      // Required with BROKER=sqs (loadConfig says so); were it missing, the queue URL check would.
      case 'sqs': return { broker: 'sqs' as const, queueUrl: config.SQS_QUEUE_URL ?? '', ...common }
      case 'eventbridge': return { broker: 'eventbridge' as const, busName: config.EVENTBRIDGE_BUS_NAME, ...common }
      case 'local': return { broker: 'local' as const, ...common }
    }
  })()
  return { destinations: { [config.BROKER]: destination }, routes: [{ types: ['*'], to: [config.BROKER] }] }
}

// Not WHATWG's URL parser: emulators' queue URLs (http://sqs.us-east-1.127.0.0.1:4566/…) are not
// valid URLs to it, yet the SDK sends them as they are.
const QUEUE_URL = /^https?:\/\/[^/\s]+\/[^/\s]+\/[A-Za-z0-9_-]{1,80}(\.fifo)?$/

/** Where a destination's field came from, for messages: the routes file's field, or the variable. */
type FieldName = (destination: string, field: 'url' | 'queueUrl' | 'brokers') => string
const fileField: FieldName = (destination, field) => `destinations.${destination}.${field}`
const envField: FieldName = (_destination, field) => (field === 'url' ? 'AMQP_URL' : 'SQS_QUEUE_URL')

function complete (
  name: string,
  spec: RoutesFile['destinations'][string],
  config: Config,
  formats: ReadonlyMap<string, WireFormat>,
  fail: (field: 'url' | 'queueUrl' | 'brokers', message: string) => never
): DestinationConfig {
  const names = new Set([...formats.values()].map(f => f.envelope))
  const common: Common = {
    name,
    // One name, or several joined by +.
    envelope: [...names].join('+'),
    envelopeOptions: envelopeOptions(spec, config),
    formats,
    mode: spec.delivery ?? config.DELIVERY_MODE
  }
  const aws = (s: { region?: string, endpoint?: string }) => ({
    ...(s.region === undefined ? {} : { region: s.region }),
    ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint })
  })
  switch (spec.broker) {
    case 'rabbitmq': {
      const url = spec.url ?? config.AMQP_URL
      if (!/^amqps?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) fail('url', 'must be an amqp:// or amqps:// URL')
      const ae = spec.alternateExchange ?? `${spec.exchange}.unrouted`
      return { ...common, broker: 'rabbitmq', url, exchange: spec.exchange, ...(ae === '' ? {} : { alternateExchange: ae }) }
    }
    case 'sqs':
      if (!QUEUE_URL.test(spec.queueUrl)) fail('queueUrl', 'must be an SQS queue URL, http(s)://host/account/queue-name')
      return {
        ...common,
        broker: 'sqs',
        queueUrl: spec.queueUrl,
        maxMessageBytes: spec.maxMessageBytes ?? config.SQS_MAX_MESSAGE_BYTES,
        ...aws(spec)
      }
    case 'eventbridge':
      return {
        ...common,
        broker: 'eventbridge',
        busName: spec.busName,
        maxEntryBytes: spec.maxEntryBytes ?? config.EVENTBRIDGE_MAX_ENTRY_BYTES,
        ...aws(spec)
      }
    case 'kafka': {
      const brokers = spec.brokers ?? config.KAFKA_BROKERS
      if (brokers === undefined) fail('brokers', 'is required when KAFKA_BROKERS is not set (host:port[,host:port…])')
      return {
        ...common,
        broker: 'kafka',
        brokers,
        // The template as written, for logs, traces and tools; each event's own topic is rendered.
        topic: typeof spec.topic === 'string' ? spec.topic : JSON.stringify(spec.topic),
        clientId: spec.clientId ?? 'event-gateway',
        compression: spec.compression ?? 'none'
      }
    }
    case 'local':
      return { ...common, broker: 'local' }
  }
}

function envelopeOptions (spec: RoutesFile['destinations'][string], config: Config): EnvelopeOptions {
  return { source: spec.source ?? config.EVENT_SOURCE, ...(spec.module === undefined ? {} : { module: spec.module }) }
}

/**
 * Resolves the routes for a catalog: the first route whose pattern matches a type wins, and every
 * type must reach at least one destination. Each destination's wire format is compiled for the
 * types it gets: every template problem is reported at once.
 */
export function resolveRouting (
  file: RoutesFile,
  entries: readonly TypeInfo[],
  config: Config,
  where: string,
  fieldName: FieldName = fileField,
  keys?: ProtectionKeys
): Routing {
  const matchers = file.routes.map(r => patternMatcher(r.types))
  const routes = new Map<string, string[]>()
  const used = new Set<string>()
  const matched = new Set<number>()
  const unrouted: string[] = []
  for (const { type } of entries) {
    const i = matchers.findIndex(m => m(type))
    const route = file.routes[i]
    if (route === undefined) {
      unrouted.push(type)
      continue
    }
    const to = [...new Set(route.to)]
    routes.set(type, to)
    matched.add(i)
    for (const name of to) used.add(name)
  }
  if (unrouted.length > 0) {
    throw new ConfigError(`${where}: no route for event type(s) ${unrouted.join(', ')}; add a route for them (or a last route for "*")`)
  }
  const warnings: string[] = []
  file.routes.forEach((r, i) => {
    if (!matched.has(i)) warnings.push(`route ${i} (${r.types.join(', ')}) matches no event type before an earlier route does`)
  })
  const destinations: DestinationConfig[] = []
  const problems: string[] = []
  for (const [name, spec] of Object.entries(file.destinations)) {
    const fail = (field: 'url' | 'queueUrl' | 'brokers', message: string): never => {
      throw new ConfigError(`${where}: ${fieldName(name, field)}: ${message}`)
    }
    if (!used.has(name)) {
      warnings.push(`destination '${name}' is used by no route; it is not connected`)
      continue
    }
    const routed = entries.filter(e => routes.get(e.type)?.includes(name) === true)
    const formats = compileFormats(name, spec.broker, spec, routed, envelopeOptions(spec, config), problems, warnings, keys)
    if (problems.length === 0) destinations.push(complete(name, spec, config, formats, fail))
  }
  const [only] = problems
  if (problems.length === 1 && only !== undefined) throw new ConfigError(`${where}: ${only}`)
  // All at once, but an answer that fits a screen: the first 20, and how many more.
  const shown = problems.slice(0, 20)
  if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`)
  if (problems.length > 1) throw new ConfigError(`${where}: the wire formats are not valid:\n  ${shown.join('\n  ')}`)
  return { destinations, routes, warnings, ...(keys === undefined ? {} : { keys }) }
}

/** The routing a config asks for: ROUTES_FILE, or the one-destination default. */
export function loadRouting (
  config: Config,
  entries: readonly TypeInfo[],
  ajv: Ajv,
  env: Record<string, string | undefined> = process.env
): Routing {
  // Checked whether or not a route protects anything: a wrong keys file stops the start.
  const keys = config.PROTECTION_KEYS_FILE === undefined ? undefined : ProtectionKeys.load(config.PROTECTION_KEYS_FILE, ajv, env)
  if (config.ROUTES_FILE === undefined) {
    return resolveRouting(defaultRoutesFile(config), entries, config, 'Invalid configuration', envField, keys)
  }
  const file = readRoutesFile(config.ROUTES_FILE, ajv, env)
  return resolveRouting(file, entries, config, `ROUTES_FILE: ${config.ROUTES_FILE}`, fileField, keys)
}
