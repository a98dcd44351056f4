'use strict'
// Worker thread that owns one write connection to the embedded SQLite database (plain CommonJS
// so it loads the same under tsx, tap and node dist/). A commit's fsync blocks this thread, not
// the gateway's event loop. Requests that arrive while a commit runs share the next transaction.
// workerData: { path, statements: { name: sql }, synchronous?: 'FULL' | 'NORMAL' }.
// Messages in: { id, requests: [name, ...params][][] } (each request a list of statements) or 'close'.
// Messages out: 'ready' once, then { id, changes: number[] } (per request) or { id, error: { code, message } }.
const { parentPort, workerData } = require('node:worker_threads')
const Database = require('better-sqlite3')

const db = new Database(workerData.path)
db.pragma('journal_mode = WAL')
db.pragma(`synchronous = ${workerData.synchronous || 'FULL'}`)
db.pragma('busy_timeout = 5000')
// The gateway reports ready only once the writer is: the first write must not pay its start-up.
parentPort.postMessage('ready')
let commit
// Prepared on first use, inside the guarded flush: a broken store becomes a classified write
// error for the batch, never a crashed writer.
function committer () {
  const statements = new Map(Object.entries(workerData.statements).map(([name, sql]) => [name, db.prepare(sql)]))
  return db.transaction(batch => batch.map(message => message.requests.map(ops => {
    let changes = 0
    for (const [name, ...params] of ops) changes += statements.get(name).run(...params).changes
    return changes
  })))
}

let queue = []
let scheduled = false

function flush () {
  scheduled = false
  const batch = queue
  queue = []
  let changes
  let error
  try {
    commit = commit || committer()
    changes = commit(batch)
  } catch (err) {
    error = { code: err.code || 'WRITE_FAILED', message: err.message }
  }
  batch.forEach((message, i) => {
    parentPort.postMessage(error === undefined ? { id: message.id, changes: changes[i] } : { id: message.id, error })
  })
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
