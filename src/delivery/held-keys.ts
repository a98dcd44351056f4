/**
 * Idempotency keys this process is publishing under, so that a repeat arriving here wakes when
 * the holder is done instead of polling the state store.
 */
export class HeldKeys {
  readonly #held = new Map<string, Promise<void>>()

  /** Marks `id` held until the returned function is called. */
  hold (id: string): () => void {
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    this.#held.set(id, held)
    return () => {
      if (this.#held.get(id) === held) this.#held.delete(id)
      release()
    }
  }

  /**
   * When every one of `ids` is held here: resolves once all are released, or after `ms`, and
   * returns true. Returns false at once when any is held elsewhere (the caller polls instead).
   */
  async waitFor (ids: readonly string[], ms: number): Promise<boolean> {
    const held = ids.map(id => this.#held.get(id))
    if (!held.every(p => p !== undefined)) return false
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(held), new Promise(resolve => { timer = setTimeout(resolve, ms) })])
    clearTimeout(timer)
    return true
  }
}
