import { Writable } from 'node:stream'
import t from 'tap'
import { coalesceWrites } from '../../src/brokers/rabbitmq/coalesce.js'

/** A stream that records each call to the underlying sink: one entry per syscall a socket would make. */
function recorder (highWaterMark = 16384) {
  const calls: string[][] = []
  const stream = new Writable({
    highWaterMark,
    write (chunk: Buffer, _enc, done) { calls.push([chunk.toString()]); done() },
    writev (chunks, done) { calls.push(chunks.map(c => (c.chunk as Buffer).toString())); done() }
  })
  return { stream, calls }
}

const tick = () => new Promise(resolve => setImmediate(resolve))

t.test('writes made in the same tick reach the sink together, in order', async t => {
  const { stream, calls } = recorder()
  coalesceWrites(stream)
  for (const frame of ['a', 'b', 'c']) stream.write(Buffer.from(frame))
  t.same(calls, [], 'nothing is written before the tick ends')
  await tick()
  t.same(calls, [['a', 'b', 'c']], 'one call with every frame')
  stream.write(Buffer.from('d'))
  await tick()
  t.same(calls, [['a', 'b', 'c'], ['d']], 'a later tick is a call of its own')
})

t.test('write callbacks run and back-pressure is reported as before', async t => {
  const { stream, calls } = recorder(4)
  coalesceWrites(stream)
  coalesceWrites(stream) // idempotent: one cork per tick, not two
  let called = 0
  t.equal(stream.write(Buffer.from('12'), () => { called++ }), true)
  t.equal(stream.write(Buffer.from('345'), () => { called++ }), false, 'past the high-water mark write() says so')
  const drained = new Promise(resolve => stream.once('drain', resolve))
  await tick()
  await drained
  t.equal(called, 2)
  t.same(calls, [['12', '345']])
})
