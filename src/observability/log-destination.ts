import pino, { type DestinationStream } from 'pino'

declare module 'sonic-boom' {
  interface SonicBoom {
    /** In contentMode 'buffer' (as here) SonicBoom takes Buffers; its types list strings only. */
    write (chunk: Buffer): boolean
  }
}

export interface LogDestinationOptions {
  /** Defaults to stdout. */
  fd?: number
  /** Most bytes held while the reader is not taking them; lines past this are dropped. */
  bufferBytes?: number
}

/** About 2,500 access lines: a log shipper may pause for a second or two under load without a line lost. */
const BUFFER_BYTES = 1024 * 1024
// Lines are written in batches of this size (about ten access lines), and what is left every
// BATCH_MS, so a busy gateway makes one write syscall per batch, not one per request.
const BATCH_BYTES = 4096
const BATCH_MS = 250

/**
 * Where the gateway's logs go: asynchronous and bounded, so that a reader that stops reading
 * (a stalled log shipper) never makes a request wait or the process unable to exit. Lines that
 * do not fit are dropped and counted (`gateway_log_lines_dropped_total`).
 */
export class LogDestination implements DestinationStream {
  #dropped = 0
  #closing: Promise<boolean> | undefined
  #broken = false
  readonly #out: ReturnType<typeof pino.destination>

  constructor ({ fd = process.stdout.fd, bufferBytes = BUFFER_BYTES }: LogDestinationOptions = {}) {
    // process.stdout.fd (rather than 1): opening process.stdout makes a pipe non-blocking, so a
    // full pipe answers EAGAIN (retried later) instead of holding a thread in write().
    // Buffer mode: in its default (utf8) mode SonicBoom appends each line to one growing string and
    // measures that string's UTF-8 length on every write, which flattens it: a copy of up to
    // 16 KB per access line. Handed Buffers, it keeps a list and concatenates once per write.
    this.#out = pino.destination({
      dest: fd,
      sync: false,
      minLength: BATCH_BYTES,
      maxLength: bufferBytes,
      periodicFlush: BATCH_MS,
      contentMode: 'buffer'
    })
    this.#out.on('drop', () => { this.#dropped++ })
    // pino's own listener silences EPIPE by making the destination discard everything; we count
    // those lines as dropped. Other errors leave the lines buffered for the next attempt.
    this.#out.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') this.#broken = true })
    // pino.destination() flushes synchronously on process exit, and SonicBoom's flushSync sleeps
    // and retries for as long as the pipe is full: the gateway that never exited after SIGTERM
    // (issue 14). close() is the bounded, asynchronous flush instead. (This class has no
    // flushSync either, so pino's fatal() does not wait on stdout.)
    this.#out.flushSync = () => {}
  }

  /** Lines that were not written: the buffer was full, the reader had gone, or we had closed. */
  get dropped (): number { return this.#dropped }

  write (line: string): void {
    if (this.#closing !== undefined || this.#broken) this.#dropped++
    else this.#out.write(Buffer.from(line))
  }

  /**
   * Writes out what is buffered and stops taking lines; resolves true once all is written, or
   * false after `timeoutMs` if the reader did not take it all by then. Never blocks.
   */
  close (timeoutMs: number): Promise<boolean> {
    this.#closing ??= this.#broken
      ? Promise.resolve(false)
      : new Promise(resolve => {
        const timer = setTimeout(() => resolve(false), timeoutMs)
        this.#out.once('close', () => {
          clearTimeout(timer)
          resolve(true)
        })
        this.#out.end()
      })
    return this.#closing
  }
}
