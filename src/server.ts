import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, orExitOnConfigError } from './config.js'
import { LogDestination } from './log-destination.js'
import { TRACE_FLUSH_TIMEOUT_MS } from './tracing.js'

// How long an exit waits for buffered log lines to reach a slow stdout before going anyway.
const LOG_FLUSH_TIMEOUT_MS = 2000

async function main (): Promise<void> {
  const config = await orExitOnConfigError(() => loadConfig())
  const logs = new LogDestination()
  const app = await orExitOnConfigError(() => buildApp(config, { logStream: logs }))
  if (config.API_KEYS_FILE === undefined) app.log.warn('API_KEYS_FILE is not set: authentication is off, any caller may publish')
  if (config.ALLOW_MOCK_CONTEXT) app.log.warn('ALLOW_MOCK_CONTEXT=true: requests without X-Tenant-ID use MOCK_TENANT_ID (development only)')

  // SIGTERM/SIGINT: readiness turns 503 at once while requests are still served for
  // SHUTDOWN_DRAIN_SECONDS (load balancers stop sending); then the server stops accepting,
  // answers what is in flight (each bounded by PUBLISH_TIMEOUT_MS), closes idle keep-alive
  // connections, the brokers and the database, exports the last spans, and writes out the
  // buffered log lines. Spooled destinations' relays finish their batch (bounded by the publish
  // deadline too) after the requests. A fatal error skips the drain. The delay bounds all of it:
  // keep terminationGracePeriodSeconds above it.
  const drainMs = config.SHUTDOWN_DRAIN_SECONDS * 1000
  const relaysMs = app.destinations.some(d => d.mode === 'spool') ? config.PUBLISH_TIMEOUT_MS : 0
  closeWithGrace({ delay: drainMs + config.PUBLISH_TIMEOUT_MS + relaysMs + TRACE_FLUSH_TIMEOUT_MS + LOG_FLUSH_TIMEOUT_MS + 3000, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) {
      app.log.error({ err }, 'shutting down after an error')
    } else {
      app.drain()
      app.log.info({ signal, drainSeconds: config.SHUTDOWN_DRAIN_SECONDS }, 'shutting down: draining')
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
  await orExitOnConfigError(() => listen(app, config), async () => {
    await app.close()
    await logs.close(LOG_FLUSH_TIMEOUT_MS)
  })
  app.log.info({ destinations: app.destinations.map(d => `${d.name} (${d.broker.name}, ${d.envelope})`), types: app.catalog.size }, 'event-gateway ready')
}

/** Listens; a port already in use is a configuration problem (one line, exit 1), not a stack. */
async function listen (app: Awaited<ReturnType<typeof buildApp>>, config: { PORT: number, HOST: string }): Promise<void> {
  try {
    await app.listen({ port: config.PORT, host: config.HOST })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConfigError(`PORT, HOST: cannot listen on ${config.HOST}:${config.PORT} (${code})`)
    }
    throw err
  }
}

await main()
