// Writes openapi/openapi.json from the app itself (default configuration, all catalog types).
// test/http/routes/openapi.test.ts fails when the committed file drifts from what the app serves.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { buildApp } from '../src/app.js'
import { MemoryBroker } from '../src/brokers/memory.js'
import { loadConfig } from '../src/config/index.js'

export const OPENAPI_PATH = new URL('../openapi/openapi.json', import.meta.url)

export async function generateOpenApi (): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'evg-openapi-'))
  const app = await buildApp(loadConfig({ DATA_DIR: dir, LOG_LEVEL: 'silent' }), { broker: new MemoryBroker() })
  try {
    await app.ready()
    return JSON.stringify(app.swagger(), null, 2) + '\n'
  } finally {
    await app.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(OPENAPI_PATH, await generateOpenApi())
  console.log(`wrote ${OPENAPI_PATH.pathname}`)
}
