import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { RABBITMQ_CLOSE_MS } from './brokers/rabbitmq/connection.js'
import { codeOf } from './errors.js'
import { ConfigError, drainSeconds, listenHost, loadConfig, orExitOnConfigError, type Config } from './config/index.js'
import { LogDestination } from './observability/log-destination.js'
import { TRACE_FLUSH_TIMEOUT_MS } from './observability/tracing.js'

// How long an exit waits for buffered log lines to reach a slow stdout before going anyway.
const LOG_FLUSH_TIMEOUT_MS = 2000

async function main (): Promise<void> {
  const config = await orExitOnConfigError(() => loadConfig())
  const logs = new LogDestination()
  const app = await orExitOnConfigError(() => buildApp(config, { logStream: logs }))
  const host = listenHost(config)
  if (config.API_KEYS_FILE === undefined) {
    app.log.warn(config.HOST === undefined
      ? 'API_KEYS_FILE is not set: authentication is off, so the gateway listens on 127.0.0.1 only; ' +
        'set HOST=0.0.0.0 to listen on every interface'
      : `API_KEYS_FILE is not set: authentication is off, any caller that reaches ${host} may publish`)
  }
  if (config.ALLOW_MOCK_CONTEXT) app.log.warn('ALLOW_MOCK_CONTEXT=true: requests without X-Tenant-ID use MOCK_TENANT_ID (development only)')

  // SIGTERM/SIGINT: readiness turns 503 at once while requests are still served for
  // SHUTDOWN_DRAIN_SECONDS (load balancers stop sending); then the server stops accepting,
  // answers what is in flight (each bounded by PUBLISH_TIMEOUT_MS), closes idle keep-alive
  // connections, the brokers and the database, exports the last spans, and writes out the
  // buffered log lines. Spooled destinations' relays finish their batch (bounded by the publish
  // deadline too) after the requests, then the brokers close (RabbitMQ: at most RABBITMQ_CLOSE_MS
  // with a silent network). A fatal error skips the drain. The delay bounds all of it:
  // keep terminationGracePeriodSeconds above it.
  const drain = drainSeconds(config)
  const drainMs = drain * 1000
  const relaysMs = app.destinations.some(d => d.mode === 'spool') ? config.PUBLISH_TIMEOUT_MS : 0
  const delay = drainMs + config.PUBLISH_TIMEOUT_MS + relaysMs + RABBITMQ_CLOSE_MS + TRACE_FLUSH_TIMEOUT_MS + LOG_FLUSH_TIMEOUT_MS + 3000
  closeWithGrace({ delay, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) {
      app.log.error({ err }, 'shutting down after an error')
    } else {
      app.drain()
      app.log.info({ signal, drainSeconds: drain }, drain > 0 ? 'shutting down: draining' : 'shutting down')
      await new Promise(resolve => setTimeout(resolve, drainMs))
    }
    try {
      await app.close()
      app.log.info('closed')
    } finally {
      await logs.close(LOG_FLUSH_TIMEOUT_MS)
    }
  })

  // A ConfigError here comes from the broker connecting (e.g. no AWS credentials), before any
  // event is accepted.
  const address = await orExitOnConfigError(() => listen(app, config.PORT, host), async () => {
    await app.close()
    await logs.close(LOG_FLUSH_TIMEOUT_MS)
  })
  // The address a person can open: a wildcard bind is reached through the loopback from here.
  const base = address.replace(/\/\/(0\.0\.0\.0|\[::\])(?=:)/, '//localhost')
  app.log.info({
    destinations: app.destinations.map(d => `${d.name} (${d.broker.name}, ${d.envelope})`),
    types: app.catalog.size,
    docs: `${base}/docs`,
    asyncapi: `${base}/docs/asyncapi`
  }, `event-gateway ready: the docs at ${base}/docs (publishers) and ${base}/docs/asyncapi (consumers)`)
}

/** Listens; a port already in use is a configuration problem (one line, exit 1), not a stack. */
async function listen (app: Awaited<ReturnType<typeof buildApp>>, port: Config['PORT'], host: string): Promise<string> {
  try {
    return await app.listen({ port, host })
  } catch (err) {
    const code = codeOf(err)
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConfigError(`PORT, HOST: cannot listen on ${host}:${port} (${code})`)
    }
    throw err
  }
}

await main()
