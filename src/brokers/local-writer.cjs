'use strict'
// Worker thread of the local broker (plain CommonJS so it loads the same under tsx, tap and
// node dist/). It owns the write connection, so a commit's fsync blocks this thread, not the
// gateway's event loop. Batches that arrive while a commit runs go into the next transaction.
// Messages in: { id, rows: [id, tenant, type, routingKey, storedAt, envelope][] } or 'close'.
// Messages out: 'ready' once, then { id } or { id, error: { code, message } }.
const { parentPort, workerData } = require('node:worker_threads')
const Database = require('better-sqlite3')

const db = new Database(workerData.path)
db.pragma('journal_mode = WAL')
db.pragma('synchronous = FULL')
db.pragma('busy_timeout = 5000')
// The gateway reports ready only once the writer is: the first event must not pay its start-up.
parentPort.postMessage('ready')
let commit
// Prepared on first use, inside the guarded flush: a broken store becomes a classified write
// error for the batch, never a crashed writer.
function committer () {
  // OR IGNORE: a retry of an event that was in fact stored must not fail or duplicate it.
  const insert = db.prepare('INSERT OR IGNORE INTO events (id, tenant, type, routing_key, stored_at, envelope) VALUES (?, ?, ?, ?, ?, ?)')
  return db.transaction(batch => {
    for (const request of batch) for (const row of request.rows) insert.run(...row)
  })
}

let queue = []
let scheduled = false

function flush () {
  scheduled = false
  const batch = queue
  queue = []
  let error
  try {
    commit = commit || committer()
    commit(batch)
  } catch (err) {
    error = { code: err.code || 'WRITE_FAILED', message: err.message }
  }
  for (const request of batch) parentPort.postMessage(error === undefined ? { id: request.id } : { id: request.id, error })
}

parentPort.on('message', message => {
  if (message === 'close') {
    if (queue.length > 0) flush()
    db.close()
    parentPort.close()
    return
  }
  queue.push(message)
  if (!scheduled) {
    scheduled = true
    setImmediate(flush)
  }
})
