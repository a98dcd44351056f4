import envSchema from 'env-schema'
import { Type, type Static } from 'typebox'
import { ConfigError, messageOf } from '../errors.js'
import { isValidTenantId } from './tenant.js'
import { addFormats } from '../validation/index.js'

export { ConfigError }

// The environment is the configuration: these names are part of the contract (docs/configuration.md),
// and that document and .env.example are checked against this schema by test/config/config.test.ts.
const Int = (def: number, minimum: number, maximum: number, description: string) =>
  Type.Integer({ default: def, minimum, maximum, description })

export const ConfigSchema = Type.Object({
  PORT: Int(3000, 0, 65535, 'listen port'),
  HOST: Type.Optional(Type.String({
    minLength: 1,
    description: 'listen address; unset: 127.0.0.1 while authentication is off (no API_KEYS_FILE), else 0.0.0.0'
  })),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info', description: 'pino level' }),
  BROKER: Type.Enum(['local', 'rabbitmq', 'sqs', 'eventbridge'], {
    default: 'local',
    description: 'where events go when there is no ROUTES_FILE'
  }),
  ROUTES_FILE: Type.Optional(Type.String({
    minLength: 1,
    description: 'JSON file of destinations and routes; without it BROKER and its variables make one destination'
  })),
  DELIVERY_MODE: Type.Enum(['sync', 'spool'], {
    default: 'sync',
    description: 'answer after the broker has the event (sync) or after the outbox has it (spool); ' +
      'a routes file\'s destination may say its own'
  }),
  DATA_DIR: Type.String({ default: './data', minLength: 1, description: 'embedded SQLite: local broker, outbox, idempotency keys' }),
  EVENT_SOURCE: Type.String({
    default: 'event-gateway',
    minLength: 1,
    maxLength: 256,
    format: 'uri-reference',
    description: 'CloudEvents source (a URI-reference, as CloudEvents requires)'
  }),
  EVENT_TYPES: Type.Optional(Type.String({ description: 'comma-separated allow-list of event types; all when unset' })),
  EVENT_CATALOG_DIR: Type.Optional(Type.String({ minLength: 1, description: 'folder of JSON files that add event types' })),
  TENANT_ID_FORMAT: Type.Enum(['uuid', 'slug'], { default: 'uuid', description: 'X-Tenant-ID format' }),
  ALLOW_MOCK_CONTEXT: Type.Boolean({
    default: false,
    description: 'use MOCK_TENANT_ID / MOCK_USER_ID when the headers are missing (development only)'
  }),
  MOCK_TENANT_ID: Type.Optional(Type.String({ minLength: 1 })),
  MOCK_USER_ID: Type.Optional(Type.String({ minLength: 1 })),
  BODY_LIMIT_BYTES: Int(262144, 1024, 16 * 1024 * 1024, 'largest accepted request body'),
  BATCH_MAX_EVENTS: Int(100, 1, 1000, 'most events in one batch request'),
  PUBLISH_TIMEOUT_MS: Int(5000, 100, 120000, 'deadline for a publish including retries'),
  HTTP_MAX_CONNECTIONS: Int(0, 0, 1000000,
    'open client connections at most; beyond, new ones are closed at once. 0: 80% of the open-files limit, at least 128 kept free'),
  HTTP_HEADERS_TIMEOUT_MS: Int(10000, 1000, 600000, 'a request head not complete by then is answered 408 and closed'),
  HTTP_REQUEST_TIMEOUT_MS: Int(30000, 1000, 600000, 'a request (head and body) not complete by then is answered 408 and closed'),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Int(72000, 1000, 600000,
    'an idle keep-alive connection is closed after this; keep it above your load balancer\'s idle timeout'),
  HTTP_MAX_INFLIGHT_BODY_BYTES: Int(16 * 1024 * 1024, 65536, 1024 * 1024 * 1024,
    'request body bytes being received or handled at once; beyond, 503 EVG_OVERLOADED at once'),
  SHUTDOWN_DRAIN_SECONDS: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 300,
    description: 'after SIGTERM: readiness 503 while still serving, so load balancers stop sending; then the server closes. ' +
      'Unset: 5 on Kubernetes (KUBERNETES_SERVICE_HOST is set), else 0'
  })),
  RETRY_MAX_ATTEMPTS: Int(3, 1, 20, 'publish attempts per event'),
  RETRY_BASE_MS: Int(100, 1, 60000, 'first backoff step'),
  RETRY_MAX_MS: Int(2000, 1, 60000, 'largest backoff step'),
  AMQP_URL: Type.String({ default: 'amqp://guest:guest@127.0.0.1:5672', minLength: 1 }),
  AMQP_EXCHANGE: Type.String({ default: 'events', minLength: 1, maxLength: 200 }),
  AMQP_HEARTBEAT_SECONDS: Int(5, 1, 600, 'RabbitMQ heartbeat: a connection silent for about twice this is taken as lost; ' +
    'a URL\'s own ?heartbeat= wins'),
  AMQP_ALTERNATE_EXCHANGE: Type.Optional(Type.String({
    maxLength: 255,
    description: 'keeps unroutable events; default <AMQP_EXCHANGE>.unrouted, empty to refuse them (502) instead'
  })),
  SQS_QUEUE_URL: Type.Optional(Type.String({ minLength: 1, description: 'SQS target; FIFO when it ends in .fifo' })),
  SQS_MAX_MESSAGE_BYTES: Int(262144, 1024, 1048576, 'largest SQS message (body + attributes); larger events get 413'),
  EVENTBRIDGE_BUS_NAME: Type.String({ default: 'default', minLength: 1 }),
  EVENTBRIDGE_MAX_ENTRY_BYTES: Int(262144, 1024, 1048576, 'largest PutEvents entry as AWS counts it; larger events get 413'),
  AWS_BATCH_MAX_ENTRIES: Int(10, 1, 10,
    'SQS and EventBridge: events at most in one call (SendMessageBatch, PutEvents); 1 sends each alone'),
  AWS_BATCH_LINGER_MS: Int(0, 0, 1000, 'SQS and EventBridge: how long an event may wait for others to share its call; 0: not at all'),
  AWS_CALLS_IN_FLIGHT: Int(1, 1, 1000, 'SQS and EventBridge: calls with room that may be out at once per queue or bus; ' +
    'while that many are out, new events gather into the next call until it is full or one returns'),
  KAFKA_BROKERS: Type.Optional(Type.String({
    minLength: 1,
    pattern: '^[^\\s,]+:[0-9]{1,5}(,[^\\s,]+:[0-9]{1,5})*$',
    description: 'Kafka bootstrap brokers, host:port[,host:port…]: the default of a routes file\'s Kafka destinations'
  })),
  KAFKA_SECURITY_PROTOCOL: Type.Enum(['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'], {
    default: 'PLAINTEXT',
    description: 'how the gateway talks to Kafka: TLS (SSL), SASL, or both'
  }),
  KAFKA_SASL_MECHANISM: Type.Enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], {
    default: 'PLAIN',
    description: 'with SASL_PLAINTEXT or SASL_SSL'
  }),
  KAFKA_SASL_USERNAME: Type.Optional(Type.String({ minLength: 1, description: 'with SASL_PLAINTEXT or SASL_SSL' })),
  KAFKA_SASL_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'with SASL_PLAINTEXT or SASL_SSL; never logged' })),
  KAFKA_SSL_CA_LOCATION: Type.Optional(Type.String({
    minLength: 1,
    description: 'PEM file of the CA that signed the brokers\' certificates (SSL, SASL_SSL); default the system\'s'
  })),
  API_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'JSON file of API keys; auth is off without it' })),
  PROTECTION_KEYS_FILE: Type.Optional(Type.String({
    minLength: 1,
    description: 'JSON file of the secrets protected fields are hashed and encrypted with (docs/protection.md); never logged'
  })),
  STATE_URL: Type.Optional(Type.String({
    pattern: '^(rediss?://.+)?$',
    description: 'redis://… (or rediss://): idempotency keys and rate limits shared by every replica; ' +
      'unset or empty: embedded (DATA_DIR and memory), one process'
  })),
  STATE_TIMEOUT_MS: Int(1000, 50, 60000,
    'a state store command not answered by then fails: a keyed request gets 503 EVG_STATE_UNAVAILABLE'),
  IDEMPOTENCY_WAIT_MS: Int(6000, 0, 120000,
    'how long a repeat waits for the request still publishing under its key before 409 EVG_IDEMPOTENCY_IN_PROGRESS'),
  RATE_LIMIT_PER_TENANT: Type.Number({
    default: 0,
    minimum: 0,
    maximum: 1000000,
    description: 'events per second per tenant (a batch counts its events); 0: no limit'
  }),
  RATE_LIMIT_BURST: Int(0, 0, 10000000, 'events a tenant may send at once above its rate; 0: one second\'s worth'),
  RATE_LIMITS_FILE: Type.Optional(Type.String({
    minLength: 1,
    description: 'JSON file of per-tenant limits that override RATE_LIMIT_PER_TENANT'
  })),
  SPOOL_URL: Type.Optional(Type.String({
    pattern: '^(postgres(ql)?://.+)?$',
    description: 'postgres://…: the outbox of spooled destinations, shared by every replica; ' +
      'unset or empty: embedded (DATA_DIR/outbox.db), one process'
  })),
  OUTBOX_MAX_EVENTS: Int(1000000, 1, 1000000000,
    'events the outbox (waiting and dead letters) may hold; beyond, spooled events get 503 EVG_OVERLOADED'),
  OUTBOX_MAX_BYTES: Int(1024 * 1024 * 1024, 1048576, Number.MAX_SAFE_INTEGER,
    'envelope bytes the outbox (waiting and dead letters) may hold; beyond, spooled events get 503 EVG_OVERLOADED'),
  OUTBOX_MAX_ATTEMPTS: Int(10, 1, 1000,
    'publish attempts the broker answered (not counting while it is down) before an event becomes a dead letter'),
  OUTBOX_BATCH_SIZE: Int(100, 1, 1000, 'events the relay publishes to a destination at once'),
  OUTBOX_RETRY_MAX_MS: Int(30000, 100, 600000, 'largest wait between the relay\'s attempts while a destination fails'),
  OUTBOX_LEASE_MS: Int(30000, 1000, 600000,
    'PostgreSQL outbox: how long a replica\'s claim on a share of the tenants lasts unless renewed; ' +
    'a replica that died leaves its share to another after this')
})

export type Config = Static<typeof ConfigSchema>

interface AjvLikeError { instancePath: string, message?: string, params?: Record<string, unknown> }

/** The Ajv errors env-schema's error carries, when it is one of those. */
function ajvErrorsOf (err: unknown): AjvLikeError[] | undefined {
  if (typeof err !== 'object' || err === null || !('errors' in err) || !Array.isArray(err.errors)) return undefined
  return err.errors
}

/**
 * Validates and types the environment. `env` defaults to process.env plus `.env` when present;
 * tests pass their own object and get no `.env`.
 */
export function loadConfig (env?: Record<string, string | undefined>): Config {
  let config: Config
  try {
    config = envSchema<Config>({
      schema: structuredClone(ConfigSchema),
      data: env ?? {},
      env: env === undefined,
      dotenv: env === undefined,
      // formats (EVENT_SOURCE is a URI-reference), as every other schema of the gateway has them
      ajv: { customOptions: ajv => addFormats(ajv) }
    })
  } catch (err) {
    const errors = ajvErrorsOf(err)
    if (errors === undefined) throw new ConfigError(`Invalid configuration: ${messageOf(err)}`)
    const lines = errors.map(e => {
      const name = e.instancePath.replace(/^\//, '').split('/')[0]
      const allowed = e.params?.allowedValues
      return `${name}: ${e.message ?? 'is invalid'}${Array.isArray(allowed) ? ` (${allowed.join(', ')})` : ''}`
    })
    throw new ConfigError(`Invalid configuration:\n  ${[...new Set(lines)].join('\n  ')}`)
  }
  checkCombinations(config)
  return config
}

function checkCombinations (config: Config): void {
  const problems: string[] = []
  if (config.RETRY_BASE_MS > config.RETRY_MAX_MS) problems.push('RETRY_BASE_MS: must not be larger than RETRY_MAX_MS')
  if (config.HTTP_HEADERS_TIMEOUT_MS > config.HTTP_REQUEST_TIMEOUT_MS) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not be larger than HTTP_REQUEST_TIMEOUT_MS')
  }
  if (config.HTTP_MAX_INFLIGHT_BODY_BYTES < config.BODY_LIMIT_BYTES) {
    problems.push('HTTP_MAX_INFLIGHT_BODY_BYTES: must not be smaller than BODY_LIMIT_BYTES')
  }
  if (config.ALLOW_MOCK_CONTEXT && config.MOCK_TENANT_ID === undefined) {
    problems.push('MOCK_TENANT_ID: is required when ALLOW_MOCK_CONTEXT=true')
  }
  if (config.MOCK_TENANT_ID !== undefined && !isValidTenantId(config.MOCK_TENANT_ID, config.TENANT_ID_FORMAT)) {
    problems.push(`MOCK_TENANT_ID: must be a valid tenant id for TENANT_ID_FORMAT=${config.TENANT_ID_FORMAT}`)
  }
  if (config.ROUTES_FILE === undefined && config.BROKER === 'sqs' && config.SQS_QUEUE_URL === undefined) {
    problems.push('SQS_QUEUE_URL: is required when BROKER=sqs')
  }
  const sasl = config.KAFKA_SECURITY_PROTOCOL.startsWith('SASL_')
  if (sasl && (config.KAFKA_SASL_USERNAME === undefined || config.KAFKA_SASL_PASSWORD === undefined)) {
    problems.push('KAFKA_SASL_USERNAME: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with ' +
      `KAFKA_SECURITY_PROTOCOL=${config.KAFKA_SECURITY_PROTOCOL}`)
  }
  // The lease is the PostgreSQL outbox's (replicas' claims); the embedded one has none.
  if (config.SPOOL_URL !== undefined && config.SPOOL_URL !== '' && config.OUTBOX_LEASE_MS <= 2 * config.PUBLISH_TIMEOUT_MS) {
    problems.push('OUTBOX_LEASE_MS: must be more than twice PUBLISH_TIMEOUT_MS (a batch being published must not lose its claim)')
  }
  if (config.SPOOL_URL !== undefined && config.SPOOL_URL !== '' && !URL.canParse(config.SPOOL_URL)) {
    problems.push('SPOOL_URL: must be a postgres:// or postgresql:// URL')
  }
  if (config.STATE_URL !== undefined && config.STATE_URL !== '' && !isRedisUrl(config.STATE_URL)) {
    problems.push('STATE_URL: must be a redis:// or rediss:// URL with a host, an optional port and an optional database number (/0)')
  }
  if (config.RATE_LIMIT_PER_TENANT > 0 && config.RATE_LIMIT_PER_TENANT < MIN_RATE) {
    problems.push(`RATE_LIMIT_PER_TENANT: must be 0 (no limit) or at least ${MIN_RATE}`)
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`)
}

/** The smallest rate limit: one event in 1000 s. Below it, waits no header can say. */
export const MIN_RATE = 0.001

/** Whether a URL is one Redis clients take; never echoes it (it may hold a password). */
function isRedisUrl (value: string): boolean {
  let url
  try {
    url = new URL(value)
  } catch {
    return false
  }
  return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && /^(\/\d{0,5})?$/.test(url.pathname)
}

export function eventTypeAllowList (config: Pick<Config, 'EVENT_TYPES'>): string[] | undefined {
  if (config.EVENT_TYPES === undefined || config.EVENT_TYPES.trim() === '') return undefined
  return config.EVENT_TYPES.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** The alternate exchange that keeps unroutable events, or undefined when it is switched off. */
/**
 * Where the server listens: HOST, else only the loopback while anyone who reaches it may publish
 * (no API keys), and every interface once keys are asked for. Containers set HOST themselves.
 */
export function listenHost (config: Pick<Config, 'HOST' | 'API_KEYS_FILE'>): string {
  return config.HOST ?? (config.API_KEYS_FILE === undefined ? '127.0.0.1' : '0.0.0.0')
}

/** SHUTDOWN_DRAIN_SECONDS, else a drain where a load balancer needs one (Kubernetes) and none in development. */
export function drainSeconds (
  config: Pick<Config, 'SHUTDOWN_DRAIN_SECONDS'>,
  env: Record<string, string | undefined> = process.env
): number {
  return config.SHUTDOWN_DRAIN_SECONDS ?? (env.KUBERNETES_SERVICE_HOST === undefined || env.KUBERNETES_SERVICE_HOST === '' ? 0 : 5)
}

export function alternateExchange (config: Config): string | undefined {
  if (config.AMQP_ALTERNATE_EXCHANGE === undefined) return `${config.AMQP_EXCHANGE}.unrouted`
  return config.AMQP_ALTERNATE_EXCHANGE === '' ? undefined : config.AMQP_ALTERNATE_EXCHANGE
}

/**
 * For entry points (server, CLIs): runs `step`; a ConfigError is printed as an "Invalid
 * configuration" message and ends the process with exit code 1, after `cleanup`.
 */
export async function orExitOnConfigError<T> (step: () => T | Promise<T>, cleanup?: () => Promise<unknown>): Promise<T> {
  try {
    return await step()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message.startsWith('Invalid configuration:') ? err.message : `Invalid configuration:\n  ${err.message}`)
    await cleanup?.().catch(() => undefined)
    process.exit(1)
  }
}

/** How the gateway reaches Kafka (KAFKA_* variables): never logged, the password least of all. */
export interface KafkaSecurity {
  protocol: 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL'
  mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'
  username?: string
  password?: string
  caLocation?: string
}

/** How long librdkafka tries to deliver a record: the Java client's delivery.timeout.ms is 120 s. */
const KAFKA_DELIVERY_TIMEOUT_MS = 60_000

/** How the gateway reaches Kafka, from the KAFKA_* variables (the password is never logged). */
export function kafkaSettings (config: Config): { security: KafkaSecurity, deliveryTimeoutMs: number } {
  return {
    security: {
      protocol: config.KAFKA_SECURITY_PROTOCOL,
      mechanism: config.KAFKA_SASL_MECHANISM,
      ...(config.KAFKA_SASL_USERNAME === undefined ? {} : { username: config.KAFKA_SASL_USERNAME }),
      ...(config.KAFKA_SASL_PASSWORD === undefined ? {} : { password: config.KAFKA_SASL_PASSWORD }),
      ...(config.KAFKA_SSL_CA_LOCATION === undefined ? {} : { caLocation: config.KAFKA_SSL_CA_LOCATION })
    },
    // librdkafka keeps trying a record (without duplicates) longer than delivery waits for one:
    // an answer is 503 at the deadline, and the relay's next attempt waits for the same record.
    deliveryTimeoutMs: Math.max(KAFKA_DELIVERY_TIMEOUT_MS, config.PUBLISH_TIMEOUT_MS)
  }
}
