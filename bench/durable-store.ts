// The hand-written durable store: what a team writes for "on disk before 202", the local store's
// promise. Fastify with the same schema validation, better-sqlite3 in WAL mode with
// synchronous=FULL, one insert (one committed transaction) per request, 202 once it returns. No
// envelope, no metrics, no logs.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import { BUILTIN_ENTRIES } from '../src/catalog/index.js'
import { createAjv } from '../src/validation/index.js'

const entry = BUILTIN_ENTRIES.find(e => e.type === 'call.ended')
if (entry === undefined) throw new Error('call.ended missing from the catalog')
const db = new Database(join(process.env.DATA_DIR ?? mkdtempSync(join(tmpdir(), 'evg-durable-')), 'events.db'))
db.pragma('journal_mode = WAL')
db.pragma('synchronous = FULL')
db.exec('CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL)')
const insert = db.prepare('INSERT INTO events (tenant, type, body) VALUES (?, ?, ?)')
const ajv = createAjv()
const app = Fastify({ logger: false })
app.setValidatorCompiler(({ schema }) => ajv.compile(schema))
app.post('/v1/events/call.ended', { schema: { body: entry.schema } }, async (request, reply) => {
  insert.run(String(request.headers['x-tenant-id'] ?? ''), 'call.ended', JSON.stringify(request.body))
  return reply.code(202).send({ status: 'accepted' })
})
await app.listen({ port: Number(process.env.PORT ?? 3602), host: '127.0.0.1' })
console.log('ready')
