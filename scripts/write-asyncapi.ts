// npm run asyncapi [-- file]: the AsyncAPI document of what the configuration in the environment
// sends (the same variables the gateway reads: ROUTES_FILE, BROKER, EVENT_CATALOG_DIR, ...), written
// to `file` (default asyncapi.json), for docs sites and CI. Nothing is connected to.
// docs/asyncapi.seed-platform.json is this for examples/routes.seed-platform.json;
// test/asyncapi/document.test.ts fails when it drifts from what the code generates.
import { writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { asyncApiDocument, GATEWAY_VERSION } from '../src/asyncapi/document.js'
import { loadCatalog } from '../src/catalog/index.js'
import { loadConfig } from '../src/config/index.js'
import { ConfigError } from '../src/errors.js'
import { loadRouting } from '../src/routing/index.js'
import { createAjv } from '../src/validation/index.js'

export function generateAsyncApi (env: Record<string, string | undefined>): string {
  const config = loadConfig(env)
  const ajv = createAjv()
  const catalog = loadCatalog(config, ajv)
  const routing = loadRouting(config, catalog.list(), ajv, env)
  const document = asyncApiDocument({ entries: catalog.list(), destinations: routing.destinations, version: GATEWAY_VERSION })
  return JSON.stringify(document, null, 2) + '\n'
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2] ?? 'asyncapi.json'
  try {
    writeFileSync(file, generateAsyncApi(process.env))
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }
  console.log(`wrote ${file}`)
}
