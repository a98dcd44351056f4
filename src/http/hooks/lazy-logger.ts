import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

/**
 * A request's logger (`request.log`) that makes its pino child, with the request id bound, only
 * when something logs through it. Most requests log nothing but their access line, which app.ts
 * writes through the root logger with the same `reqId` field in the same place: a child per
 * request would be made and thrown away.
 */
class LazyChildLogger {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Bindings
  readonly #opts: ChildLoggerOptions
  #child: FastifyBaseLogger | undefined

  constructor (parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#opts = opts
  }

  #real (): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#opts)
    return this.#child
  }

  get level (): string { return (this.#child ?? this.#parent).level }
  set level (level: string) { this.#real().level = level }
  fatal (...args: unknown[]): void { (this.#real().fatal as (...a: unknown[]) => void)(...args) }
  error (...args: unknown[]): void { (this.#real().error as (...a: unknown[]) => void)(...args) }
  warn (...args: unknown[]): void { (this.#real().warn as (...a: unknown[]) => void)(...args) }
  info (...args: unknown[]): void { (this.#real().info as (...a: unknown[]) => void)(...args) }
  debug (...args: unknown[]): void { (this.#real().debug as (...a: unknown[]) => void)(...args) }
  trace (...args: unknown[]): void { (this.#real().trace as (...a: unknown[]) => void)(...args) }
  silent (...args: unknown[]): void { (this.#real().silent as (...a: unknown[]) => void)(...args) }
  child (bindings: Bindings, opts?: ChildLoggerOptions): FastifyBaseLogger { return this.#real().child(bindings, opts) }
}

/** Fastify's `childLoggerFactory`: a LazyChildLogger instead of a pino child per request. */
export function lazyChildLogger (logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChildLogger(logger, bindings, opts) as unknown as FastifyBaseLogger
}
