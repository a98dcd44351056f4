import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { constants, createReadStream, openSync, writeSync, type ReadStream } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { LogDestination } from '../../src/observability/log-destination.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { dataDir } from '../helper.js'

/**
 * A pipe standing in for stdout: `fd` is its write end, non-blocking as Node makes a stdout pipe.
 * Opened read-write, so it stays open with no reader; `read()` attaches one.
 */
function pipe (t: Test) {
  const path = join(dataDir(t), 'stdout')
  execFileSync('mkfifo', [path])
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
  let reader: ReadStream | undefined
  // The destination closes fd itself once it has ended.
  t.teardown(() => reader?.destroy())
  /** Reads until `bytes` have arrived. */
  const read = async (bytes: number): Promise<string> => {
    reader = createReadStream(path, { encoding: 'utf8' })
    let text = ''
    while (Buffer.byteLength(text) < bytes) text += (await once(reader, 'data'))[0]
    return text
  }
  return { fd, read }
}

/** Fills the pipe as a stalled reader leaves it; returns how many bytes it took. */
function fill (fd: number): number {
  let filled = 0
  for (;;) {
    try {
      filled += writeSync(fd, '\n'.repeat(4096))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return filled
      throw err
    }
  }
}

// Every line the same length, so a reader knows how many bytes to wait for.
const line = (i: number) => JSON.stringify({
  level: 30,
  msg: 'request completed',
  n: String(i).padStart(6, '0'),
  reqId: 'x'.repeat(80)
}) + '\n'
const LINE_BYTES = Buffer.byteLength(line(0))
const numbers = (lines: string[]) => lines.map(l => Number(JSON.parse(l).n))

t.test('a stalled reader: lines past the buffer are dropped and counted, never torn, and close() gives up', async t => {
  const out = pipe(t)
  const filled = fill(out.fd)
  const logs = new LogDestination({ fd: out.fd, bufferBytes: 16 * 1024 })
  const written = 2000
  for (let i = 0; i < written; i++) logs.write(line(i))

  t.ok(logs.dropped > 0, `${logs.dropped} lines dropped`)
  t.ok(logs.dropped < written, 'the buffer kept the first lines')
  const { registry } = createMetrics(() => logs.dropped)
  t.match(await registry.metrics(), `gateway_log_lines_dropped_total ${logs.dropped}\n`)
  t.equal(await logs.close(100), false, 'close() resolves, though not everything was written')

  // The reader comes back: every line that was kept arrives whole and in order.
  const kept = written - logs.dropped
  const text = await out.read(filled + kept * LINE_BYTES)
  const lines = text.split('\n').filter(Boolean)
  t.equal(lines.length, kept)
  t.same(numbers(lines), Array.from({ length: kept }, (_, i) => i))
})

t.test('a reader that keeps up gets every line in order; close() resolves once all is written', async t => {
  const out = pipe(t)
  const logs = new LogDestination({ fd: out.fd })
  const reading = out.read(3000 * LINE_BYTES)
  for (let i = 0; i < 3000; i++) logs.write(line(i))
  t.equal(await logs.close(60_000), true)
  const lines = (await reading).split('\n').filter(Boolean)
  t.same(numbers(lines), Array.from({ length: 3000 }, (_, i) => i))
  t.equal(logs.dropped, 0)

  logs.write(line(3000))
  t.equal(logs.dropped, 1, 'a line logged after close() is counted, not written')
})
