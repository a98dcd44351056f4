import type pg from 'pg'
import { BUCKETS, rowColumnsDdl } from './outbox.js'

/**
 * The PostgreSQL outbox's tables (in the first schema of the URL's search_path), created if
 * missing, and each destination's bucket claims, in one transaction.
 */
export async function createTables (client: pg.PoolClient, destinations: readonly string[]): Promise<void> {
  await client.query('BEGIN')
  // Replicas starting together create the tables once.
  await client.query("SELECT pg_advisory_xact_lock(hashtext('event-gateway spool schema'))")
  const columns = rowColumnsDdl({ int: 'int', bigint: 'bigint' })
  await client.query(`
    CREATE TABLE IF NOT EXISTS spool_outbox (
      seq bigserial PRIMARY KEY,
      ${columns},
      attempts int NOT NULL DEFAULT 0,
      retry_at bigint NOT NULL DEFAULT 0
    );
    -- An outbox of an earlier version: the column a deferred event waits by (0: no wait).
    ALTER TABLE spool_outbox ADD COLUMN IF NOT EXISTS retry_at bigint NOT NULL DEFAULT 0;
    CREATE INDEX IF NOT EXISTS spool_outbox_destination_seq ON spool_outbox (destination, seq);
    CREATE INDEX IF NOT EXISTS spool_outbox_destination_bucket ON spool_outbox (destination, bucket);
    CREATE TABLE IF NOT EXISTS spool_dead_letters (
      id bigserial PRIMARY KEY,
      ${columns},
      attempts int NOT NULL,
      reason text NOT NULL,
      failed_at bigint NOT NULL
    );
    CREATE INDEX IF NOT EXISTS spool_dead_letters_destination_id ON spool_dead_letters (destination, id);
    CREATE TABLE IF NOT EXISTS spool_claims (
      destination text NOT NULL,
      bucket int NOT NULL,
      owner text,
      expires_at timestamptz NOT NULL DEFAULT '-infinity',
      PRIMARY KEY (destination, bucket)
    );
  `)
  for (const destination of destinations) {
    await client.query('INSERT INTO spool_claims (destination, bucket) SELECT $1, generate_series(0, $2::int - 1) ON CONFLICT DO NOTHING',
      [destination, BUCKETS])
  }
  await client.query('COMMIT')
}
