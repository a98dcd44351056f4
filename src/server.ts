import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, orExitOnConfigError } from './config.js'
import { LogDestination } from './log-destination.js'

// How long an exit waits for buffered log lines to reach a slow stdout before going anyway.
const LOG_FLUSH_TIMEOUT_MS = 2000

async function main (): Promise<void> {
  const config = await orExitOnConfigError(() => loadConfig())
  const logs = new LogDestination()
  const app = await orExitOnConfigError(() => buildApp(config, { logStream: logs }))
  if (config.API_KEYS_FILE === undefined) app.log.warn('API_KEYS_FILE is not set: authentication is off, any caller may publish')
  if (config.ALLOW_MOCK_CONTEXT) app.log.warn('ALLOW_MOCK_CONTEXT=true: requests without X-Tenant-ID use MOCK_TENANT_ID (development only)')

  // SIGTERM/SIGINT or a fatal error: stop taking requests, let in-flight publishes finish, close
  // the broker, then write out the buffered log lines. The delay bounds all of it.
  closeWithGrace({ delay: config.PUBLISH_TIMEOUT_MS + 5000, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    try {
      await app.close()
    } finally {
      await logs.close(LOG_FLUSH_TIMEOUT_MS)
    }
  })

  // A ConfigError here comes from the broker connecting (e.g. no AWS credentials), before any
  // event is accepted.
  await orExitOnConfigError(() => app.listen({ port: config.PORT, host: config.HOST }), async () => {
    await app.close()
    await logs.close(LOG_FLUSH_TIMEOUT_MS)
  })
  app.log.info({ destinations: app.destinations.map(d => `${d.name} (${d.broker.name}, ${d.profile.name})`), types: app.catalog.size }, 'event-gateway ready')
}

await main()
