import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

/**
 * A request's logger (`request.log`) that makes its pino child, with the request id bound, only
 * when something logs through it. Most requests log nothing but their access line, which app.ts
 * writes through the root logger with the same `reqId` field in the same place: a child per
 * request would be made and thrown away.
 */
class LazyChildLogger implements FastifyBaseLogger {
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
  // pino's log methods are overloaded; arguments pass through as they came, with the child as `this`.
  fatal (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.fatal, child, args) }
  error (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.error, child, args) }
  warn (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.warn, child, args) }
  info (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.info, child, args) }
  debug (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.debug, child, args) }
  trace (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.trace, child, args) }
  silent (...args: unknown[]): void { const child = this.#real(); Reflect.apply(child.silent, child, args) }
  child (bindings: Bindings, opts?: ChildLoggerOptions): FastifyBaseLogger { return this.#real().child(bindings, opts) }
}

/** Fastify's `childLoggerFactory`: a LazyChildLogger instead of a pino child per request. */
export function lazyChildLogger (logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChildLogger(logger, bindings, opts)
}
