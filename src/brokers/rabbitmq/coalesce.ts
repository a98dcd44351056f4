import type { Writable } from 'node:stream'

/** Streams already coalescing. */
const coalescing = new WeakSet<Writable>()

/**
 * Makes every write to `stream` in one tick go out together: the first write of a tick corks
 * the stream and the next tick uncorks it, so what was written meanwhile reaches the socket in
 * one writev, not one syscall per write. amqplib writes each frame of each message on its own
 * (a publish is two or three frames): with a batch of 100 events, 100 writes become one.
 * Order and back-pressure are the stream's own (write() still returns false past the high-water
 * mark); frames are only held until the end of the current tick. Idempotent.
 */
export function coalesceWrites (stream: Writable): void {
  if (coalescing.has(stream)) return
  coalescing.add(stream)
  const write = stream.write
  let corked = false
  const uncork = () => {
    corked = false
    stream.uncork()
  }
  // write() has overloads; one function forwarding its arguments stands for them all.
  stream.write = function (this: Writable, ...args: Parameters<Writable['write']>) {
    if (!corked) {
      corked = true
      stream.cork()
      process.nextTick(uncork)
    }
    return write.apply(this, args)
  } as Writable['write']
}
