import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(1)
    }
    throw err
  }
  let app
  try {
    app = await buildApp(config)
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`Invalid configuration:\n  ${err.message.replace(/^Invalid configuration:\s*/, '')}`)
      process.exit(1)
    }
    throw err
  }
  if (config.API_KEYS_FILE === undefined) app.log.warn('API_KEYS_FILE is not set: authentication is off, any caller may publish')
  if (config.ALLOW_MOCK_CONTEXT) app.log.warn('ALLOW_MOCK_CONTEXT=true: requests without X-Tenant-ID use MOCK_TENANT_ID (development only)')

  // SIGTERM/SIGINT: stop taking requests, let in-flight publishes finish, then close the broker.
  closeWithGrace({ delay: config.PUBLISH_TIMEOUT_MS + 5000, logger: app.log }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })

  try {
    await app.listen({ port: config.PORT, host: config.HOST })
  } catch (err) {
    // e.g. no AWS credentials: found when the broker connects, before any event is accepted
    if (err instanceof ConfigError) {
      console.error(err.message)
      await app.close().catch(() => undefined)
      process.exit(1)
    }
    throw err
  }
  app.log.info({ broker: config.BROKER, types: app.catalog.size }, 'event-gateway ready')
}

await main()
