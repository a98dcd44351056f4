import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'

export type Db = Database.Database

/**
 * An embedded SQLite database under DATA_DIR: gateway.db (local broker, idempotency keys) or
 * outbox.db (spooled events). WAL with FULL
 * sync: a commit is on disk before we answer; writes are grouped so the fsync is shared.
 */
export function openDatabase (dataDir: string, file = 'gateway.db'): Db {
  mkdirSync(dataDir, { recursive: true })
  const db = new Database(join(dataDir, file))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  // Reads (idempotency look-ups, read-back) come through this connection while the writer
  // threads' commits invalidate its page cache: mapped pages are read without a system call.
  db.pragma('mmap_size = 268435456')
  return db
}
