import { getHeapStatistics } from 'node:v8'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { DestinationStream } from 'pino'
import { ApiKeys } from './auth.js'
import type { Broker } from './brokers/broker.js'
import { LocalBroker } from './brokers/local.js'
import { EventBridgeBroker } from './brokers/aws/eventbridge.js'
import { SqsBroker } from './brokers/aws/sqs.js'
import { RabbitMqBroker } from './brokers/rabbitmq/index.js'
import { Catalog, selectEntries } from './catalog/index.js'
import { loadExternalEntries } from './catalog/external.js'
import { alternateExchange, eventTypeAllowList, type Config } from './config.js'
import { openDatabase, type Db } from './database.js'
import { Delivery } from './delivery/publisher.js'
import { IdempotencyStore } from './idempotency.js'
import { createMetrics, type Metrics } from './metrics.js'
import { docs } from './http/docs.js'
import { eventRoutes, type EventsRouteOptions } from './http/events.js'
import { eventTypeRoutes } from './http/event-types.js'
import { healthRoutes } from './http/health.js'
import { parseJsonBody, registerProblemHandlers } from './http/problems.js'
import { serverOptions } from './server-options.js'
import { createAjv } from './validation.js'

export interface AppDeps {
  /** A broker to use instead of the one BROKER names (tests: the memory broker). */
  broker?: Broker
  logStream?: DestinationStream
  /** Load-shedding thresholds (tests make them tiny). */
  pressure?: Partial<EventsRouteOptions['pressure']>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Ids and outcomes for this request's access log line; never payload fields. */
    logFields: Record<string, unknown> | undefined
  }
  interface FastifyInstance {
    broker: Broker
    metrics: Metrics
    catalog: Catalog
  }
}

function createBroker (config: Config, db: Db, log: FastifyBaseLogger): Broker {
  switch (config.BROKER) {
    case 'local': return new LocalBroker(db)
    case 'rabbitmq': {
      const ae = alternateExchange(config)
      return new RabbitMqBroker({ url: config.AMQP_URL, exchange: config.AMQP_EXCHANGE, ...(ae === undefined ? {} : { alternateExchange: ae }), connectTimeoutMs: config.PUBLISH_TIMEOUT_MS, log })
    }
    case 'sqs': return new SqsBroker({ queueUrl: config.SQS_QUEUE_URL as string, maxMessageBytes: config.SQS_MAX_MESSAGE_BYTES })
    case 'eventbridge': return new EventBridgeBroker({ busName: config.EVENTBRIDGE_BUS_NAME, source: config.EVENT_SOURCE, maxEntryBytes: config.EVENTBRIDGE_MAX_ENTRY_BYTES })
  }
}

/** Builds the whole gateway from a config; server.ts and every test use this. */
export async function buildApp (config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const ajv = createAjv()
  const extra = config.EVENT_CATALOG_DIR === undefined ? [] : loadExternalEntries(config.EVENT_CATALOG_DIR, ajv)
  const catalog = new Catalog(selectEntries(extra, eventTypeAllowList(config)), ajv)
  const apiKeys = config.API_KEYS_FILE === undefined ? undefined : ApiKeys.load(config.API_KEYS_FILE, ajv)
  const db = openDatabase(config.DATA_DIR)
  const metrics = createMetrics()
  const idempotency = new IdempotencyStore(db)

  const app = Fastify(serverOptions(config, deps.logStream))
  const broker = deps.broker ?? createBroker(config, db, app.log)
  // Bodies: strict (no coercion, no stripping). Query strings and headers are text by nature,
  // so numbers there are coerced, as Fastify does by default.
  const lenient = createAjv()
  lenient.opts.coerceTypes = true
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? ajv : lenient).compile(schema))
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody)

  const delivery = new Delivery(broker, {
    maxAttempts: config.RETRY_MAX_ATTEMPTS,
    baseMs: config.RETRY_BASE_MS,
    maxMs: config.RETRY_MAX_MS,
    timeoutMs: config.PUBLISH_TIMEOUT_MS
  }, metrics, app.log)

  app.decorateRequest('logFields', undefined)
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({ method: request.method, url: request.url, statusCode: reply.statusCode, responseTime: reply.elapsedTime, ...request.logFields }, 'request completed')
  })
  app.decorate('broker', broker)
  app.decorate('metrics', metrics)
  app.decorate('catalog', catalog)
  registerProblemHandlers(app, (request, p) => {
    const type = request.routeOptions.config?.eventType
    metrics.rejected.inc({ type: type ?? 'unknown', code: p.code })
  })

  await app.register(docs, { catalog })
  // 65% of V8's heap limit: far above the ~26 MB live heap under load, well below an OOM.
  const pressure = { maxEventLoopDelay: 1000, maxHeapUsedBytes: Math.floor(getHeapStatistics().heap_size_limit * 0.65), sampleInterval: 1000, ...deps.pressure }
  await app.register(eventRoutes, { config, catalog, delivery, broker, idempotency, metrics, pressure, ...(apiKeys === undefined ? {} : { apiKeys }) })
  await app.register(eventTypeRoutes, { catalog })
  await app.register(healthRoutes, { broker, metrics })

  app.addHook('onReady', async () => {
    await broker.connect()
    metrics.brokerUp.set({ broker: broker.name }, (await broker.health()).up ? 1 : 0)
  })
  // Runs after the server has stopped taking requests and in-flight ones have finished.
  app.addHook('onClose', async () => {
    await broker.close()
    idempotency.close()
    db.close()
  })
  return app
}
