/** A failure that ends a CLI with its documented exit code, after what it printed so far. */
export class CliFailure extends Error {
  constructor (readonly code: number, message: string) {
    super(message)
  }
}
