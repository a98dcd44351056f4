import { getHeapStatistics } from 'node:v8'
import type { TracerProvider } from '@opentelemetry/api'
import Fastify, { type FastifyInstance } from 'fastify'
import type { DestinationStream } from 'pino'
import { ApiKeys } from './http/context/api-keys.js'
import { isEventReader, type Broker } from './brokers/broker.js'
import { healthOf } from './brokers/health.js'
import { brokerFactory, messagingOf, type BrokerFactory } from './brokers/index.js'
import { loadCatalog, type Catalog } from './catalog/index.js'
import { kafkaSettings, type Config } from './config/index.js'
import { openDatabase } from './storage/database.js'
import { FanOut, type Destination } from './delivery/fan-out.js'
import { Intake, type IntakeOptions } from './delivery/intake.js'
import type { ProtectionKeys } from './protection/keys.js'
import { SyncDelivery } from './delivery/publisher.js'
import { HEADERS } from './http/context/headers.js'
import { createMetrics, type Metrics, type ProtectedCount } from './observability/metrics.js'
import { docs } from './http/routes/docs.js'
import { eventRoutes, type EventsRouteOptions } from './http/routes/events/index.js'
import { eventTypeRoutes } from './http/routes/event-types.js'
import { healthRoutes } from './http/routes/health.js'
import { bodiesInFlight, maxConnections } from './http/hooks/limits.js'
import { contentEncoding } from './http/hooks/content-encoding.js'
import { shutdown } from './http/hooks/shutdown.js'
import { parseJsonBody } from './http/json-body.js'
import { problems } from './http/problems/index.js'
import { accessLog } from './http/hooks/access-log.js'
import { requestMetrics } from './http/hooks/request-metrics.js'
import { requestTracing } from './http/hooks/request-tracing.js'
import { asyncApiRoutes } from './http/routes/asyncapi.js'
import { asyncApiDocument, GATEWAY_VERSION } from './asyncapi/document.js'
import { loadRouting, type DestinationConfig } from './routing/index.js'
import { openStateStore } from './state/index.js'
import { TenantLimits } from './state/rate-limiter.js'
import { serverOptions } from './http/server-options.js'
import { Spool } from './spool/index.js'
import { adminRoutes } from './http/routes/admin.js'
import { tracingFromEnv, tracingWith } from './observability/tracing.js'
import { compileBodyValidator, createAjv } from './validation/index.js'

export interface AppDeps {
  /** A broker for the one default destination instead of the one BROKER names (tests: the memory broker). */
  broker?: Broker
  /** Builds every destination's broker instead of the real adapters (tests: memory brokers per destination). */
  brokers?: BrokerFactory
  logStream?: DestinationStream
  /** The environment `${NAME}` references in ROUTES_FILE are read from (default process.env). */
  env?: Record<string, string | undefined>
  /** Load-shedding thresholds (tests make them tiny). */
  pressure?: Partial<EventsRouteOptions['pressure']>
  /** Traces with this provider instead of the one the OTEL_* variables configure (tests: an in-memory exporter). */
  tracerProvider?: TracerProvider
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
    catalog: Catalog
    /** Every destination with its broker, in routes-file order. */
    destinations: readonly Destination[]
  }
}

/** Builds the whole gateway from a config; server.ts and every test use this. */
export async function buildApp (config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const ajv = createAjv()
  const catalog = loadCatalog(config, ajv)
  const routing = loadRouting(config, catalog.list(), ajv, deps.env)
  const apiKeys = config.API_KEYS_FILE === undefined ? undefined : ApiKeys.load(config.API_KEYS_FILE, ajv, config.TENANT_ID_FORMAT)
  const db = openDatabase(config.DATA_DIR)
  // The log destination counts the lines a slow stdout made it drop (src/observability/log-destination.ts).
  const stream = deps.logStream
  const dropped = () => stream !== undefined && 'dropped' in stream && typeof stream.dropped === 'number' ? stream.dropped : 0
  const metrics = createMetrics(dropped, () => protectedCounts(routing.destinations))
  const limits = TenantLimits.load(config, ajv)

  const app = Fastify(serverOptions(config, deps.logStream))
  const state = openStateStore(config, db, app.log)
  const tracing = deps.tracerProvider === undefined ? tracingFromEnv(app.log) : tracingWith(deps.tracerProvider)
  for (const warning of routing.warnings) app.log.warn(`routing: ${warning}`)
  // Bodies: strict (no coercion, no stripping). Query strings are text by nature,
  // so numbers there are coerced, as Fastify does by default.
  const lenient = createAjv()
  lenient.opts.coerceTypes = true
  // Headers: checked once, by the event routes' context hook (src/http/context/hook.ts), before
  // the body is read; their schemas document them.
  const documentedOnly = () => true
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body') return compileBodyValidator(ajv, schema)
    return httpPart === 'headers' ? documentedOnly : lenient.compile(schema)
  })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody)

  const testBroker = deps.broker
  const makeBroker = deps.brokers ?? (testBroker === undefined
    ? brokerFactory({
      db,
      log: app.log,
      connectTimeoutMs: config.PUBLISH_TIMEOUT_MS,
      heartbeatSeconds: config.AMQP_HEARTBEAT_SECONDS,
      kafka: kafkaSettings(config),
      coalescing: {
        maxEntries: config.AWS_BATCH_MAX_ENTRIES,
        lingerMs: config.AWS_BATCH_LINGER_MS,
        callsInFlight: config.AWS_CALLS_IN_FLIGHT
      },
      onAwsCall: (destination, broker, entries) => { metrics.awsCallEntries.observe({ destination, broker }, entries) },
      ...(tracing.tracer === undefined ? {} : { tracer: tracing.tracer })
    })
    : () => testBroker)
  const policy = {
    maxAttempts: config.RETRY_MAX_ATTEMPTS,
    baseMs: config.RETRY_BASE_MS,
    maxMs: config.RETRY_MAX_MS,
    timeoutMs: config.PUBLISH_TIMEOUT_MS
  }
  // Spooled destinations answer once their outbox has the event; their relay publishes it
  // through the same sync delivery (retries, deadline, metrics) a sync destination uses.
  const spool = routing.destinations.some(d => d.mode === 'spool') ? new Spool(config, metrics, app.log) : undefined
  const destinations: Destination[] = routing.destinations.map(d => {
    const broker = makeBroker(d)
    const sync = new SyncDelivery({ name: d.name, broker }, policy, metrics, app.log)
    const delivery = d.mode === 'spool' && spool !== undefined ? spool.destination({ name: d.name, broker, delivery: sync }) : sync
    return { name: d.name, broker, mode: d.mode, delivery, formats: d.formats, envelope: d.envelope, messaging: messagingOf(d) }
  })
  const fanOut = new FanOut(destinations, routing.routes, tracing.tracer)
  const reader = destinations.map(d => d.broker).find(isEventReader)

  app.decorate('metrics', metrics)
  app.decorate('catalog', catalog)
  app.decorate('destinations', destinations)
  app.server.maxConnections = maxConnections(config.HTTP_MAX_CONNECTIONS)
  // The cross-cutting hooks, each a named plugin whose dependencies fastify-plugin checks: the
  // request id goes back on every answer; the server span starts; while closing, every request
  // gets a 503 problem; bodies in flight are bounded; the access line and the request metrics.
  app.addHook('onRequest', async (request, reply) => { reply.header(HEADERS.requestId, request.id) })
  await app.register(problems)
  await app.register(requestTracing, { tracer: tracing.tracer })
  await app.register(shutdown)
  await app.register(bodiesInFlight, { budget: config.HTTP_MAX_INFLIGHT_BODY_BYTES, bodyLimit: config.BODY_LIMIT_BYTES })
  await app.register(contentEncoding)
  await app.register(accessLog)
  await app.register(requestMetrics)

  await app.register(docs, { catalog })
  await app.register(asyncApiRoutes, {
    document: () => asyncApiDocument({ entries: catalog.list(), destinations: routing.destinations, version: GATEWAY_VERSION })
  })
  // 65% of V8's heap limit: far above the ~26 MB live heap under load, well below an OOM.
  const pressure = {
    maxEventLoopDelay: 1000,
    maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * 0.65),
    sampleInterval: 1000,
    ...deps.pressure
  }
  await app.register(eventRoutes, {
    config,
    catalog,
    fanOut,
    intake: new Intake(fanOut, state.idempotency, intakeOptions(config, routing.keys), metrics, app.log),
    rateLimits: limits.any ? { limits, limiter: state.rateLimiter } : undefined,
    metrics,
    pressure,
    ...(reader === undefined ? {} : { reader }),
    ...(apiKeys === undefined ? {} : { apiKeys })
  })
  await app.register(eventTypeRoutes, { catalog, destinationsOf: type => fanOut.destinationsOf(type).map(t => t.name) })
  await app.register(healthRoutes, { destinations, state, metrics, draining: app.draining, ...(spool === undefined ? {} : { spool }) })
  await app.register(adminRoutes, { ...(spool === undefined ? {} : { spool }), ...(apiKeys === undefined ? {} : { apiKeys }) })

  app.addHook('onReady', async () => {
    await state.connect()
    await spool?.connect()
    await Promise.all(destinations.map(async t => {
      await t.broker.connect()
      metrics.brokerUp.set({ destination: t.name, broker: t.broker.name }, (await healthOf(t.broker)).up ? 1 : 0)
    }))
    spool?.startRelays()
  })
  // Runs after the server has stopped taking requests and in-flight ones have finished.
  app.addHook('onClose', async () => {
    // Intake has stopped: each relay finishes its batch before the brokers go.
    await spool?.stopRelays()
    await Promise.all(destinations.map(t => t.broker.close()))
    await spool?.close()
    await state.close()
    db.close()
    await tracing.shutdown()
  })
  return app
}

/** Per destination and action, the values its protections changed (every action of a rule shows, 0 until used). */
function * protectedCounts (destinations: readonly DestinationConfig[]): Iterable<ProtectedCount> {
  for (const d of destinations) {
    for (const format of d.formats.values()) {
      const protection = format.protection
      if (protection === undefined) continue
      for (const action of new Set(protection.rules.map(r => r.action))) {
        yield { destination: d.name, action, count: protection.counts[action] }
      }
    }
  }
}

/** Reservations outlive any publish (its deadline, then settling the key), so a live holder never loses its key. */
function intakeOptions (config: Config, keys: ProtectionKeys | undefined): IntakeOptions {
  return {
    waitMs: config.IDEMPOTENCY_WAIT_MS,
    leaseMs: 2 * config.PUBLISH_TIMEOUT_MS + 10_000,
    ...(keys === undefined ? {} : { fingerprintKey: (tenant: string) => keys.key(tenant, 'fingerprint', keys.first) as Buffer })
  }
}
