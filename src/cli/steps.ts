/** What provisioning did, one line per step, counted over every destination. */
export class Steps {
  created = 0
  existing = 0

  say (what: string, created: boolean): void {
    if (created) this.created++
    else this.existing++
    console.log(`  ${what.padEnd(64)} ${created ? 'created' : 'exists'}`)
  }

  /** Warnings are not steps: they go to stderr, beside the step they are about. */
  warn (text: string): void {
    console.error(`  warning: ${text}`)
  }

  summary (): string {
    if (this.created + this.existing === 0) return 'Nothing to provision.'
    return this.created === 0
      ? `Nothing to change: all ${this.existing} already in place.`
      : `Done: ${this.created} created, ${this.existing} already in place.`
  }
}
