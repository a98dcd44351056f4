import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { Test } from 'tap'
import { serviceSkip } from './services.js'

// The tests' PostgreSQL: the real one on this machine (database `test`), each test in a schema of
// its own so that runs and tests never see each other's rows.

export const PG_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Why PostgreSQL tests skip (false: they run); a failure instead under REQUIRE_BROKERS=1. */
export async function pgSkip (): Promise<string | false> {
  return await serviceSkip('PostgreSQL', {
    at: PG_URL,
    probe: async () => {
      const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 })
      try {
        await client.connect()
        await client.query('SELECT 1')
      } finally {
        await client.end().catch(() => undefined)
      }
    },
    hint: 'start it with pg_ctlcluster'
  })
}

/** A schema of the test's own (`<prefix>_<random>`), dropped when it ends; the URL whose search_path names it. */
export async function pgSchema (t: Test, prefix = 'evg_test'): Promise<{ schema: string, url: string }> {
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  await admin.query(`CREATE SCHEMA ${schema}`)
  await admin.end()
  t.teardown(async () => {
    const client = new pg.Client({ connectionString: PG_URL })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await client.end()
  })
  const url = new URL(PG_URL)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return { schema, url: url.toString() }
}
