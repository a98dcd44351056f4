interface Op<T> { key: string, args: (string | number)[], resolve: (answer: T[]) => void, reject: (err: unknown) => void }

/**
 * Gathers the calls of one script made in the same tick (or within `gatherMs`), per tenant, into
 * one command (at most 256 keys each): at one command per key, the socket writes cost more than
 * the scripts.
 */
export class Gather<T> {
  readonly #run: (keysThenArgs: (string | number)[], keys: number) => Promise<T[]>
  readonly #perKey: number
  readonly #gatherMs: number
  #pending = new Map<string, Op<T>[]>()
  #scheduled = false

  /** `perKey`: answers per key in the script's reply. `gatherMs` 0: sent at the end of the tick. */
  constructor (run: (keysThenArgs: (string | number)[], keys: number) => Promise<T[]>, perKey: number, gatherMs = 0) {
    this.#run = run
    this.#perKey = perKey
    this.#gatherMs = gatherMs
  }

  /** The key's answers; rejects when the command failed (for every key in it). */
  call (tenant: string, key: string, args: (string | number)[]): Promise<T[]> {
    return new Promise((resolve, reject) => {
      let ops = this.#pending.get(tenant)
      if (ops === undefined) this.#pending.set(tenant, ops = [])
      ops.push({ key, args, resolve, reject })
      if (ops.length >= 256) {
        this.#pending.delete(tenant)
        this.#send(ops)
      } else if (!this.#scheduled) {
        this.#scheduled = true
        if (this.#gatherMs === 0) setImmediate(() => this.flush())
        else setTimeout(() => this.flush(), this.#gatherMs)
      }
    })
  }

  /** Sends what is gathered now (a later timer finds nothing). */
  flush (): void {
    this.#scheduled = false
    const pending = this.#pending
    this.#pending = new Map()
    for (const ops of pending.values()) this.#send(ops)
  }

  #send (ops: Op<T>[]): void {
    const keysThenArgs: (string | number)[] = ops.map(op => op.key)
    for (const op of ops) keysThenArgs.push(...op.args)
    this.#run(keysThenArgs, ops.length).then(answers => {
      const n = this.#perKey
      ops.forEach((op, i) => op.resolve(answers.slice(i * n, i * n + n)))
    }, (err: unknown) => { for (const op of ops) op.reject(err) })
  }
}
