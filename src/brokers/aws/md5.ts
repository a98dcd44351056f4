import { createHash, type Hash } from 'node:crypto'

type SourceData = string | ArrayBuffer | ArrayBufferView

/**
 * MD5 with Node's own crypto, for the SQS client's check of every body it sent against the
 * MD5OfMessageBody SQS answers (the check stays on). The SDK's default is an MD5 written in
 * JavaScript: measured here at about 200 µs of CPU a call, a third of what a call costs.
 */
export class NativeMd5 {
  #hash: Hash = createHash('md5')

  update (data: SourceData): void {
    if (typeof data === 'string') this.#hash.update(data, 'utf8')
    else if (ArrayBuffer.isView(data)) this.#hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    else this.#hash.update(new Uint8Array(data))
  }

  async digest (): Promise<Uint8Array> {
    return this.#hash.digest()
  }

  reset (): void {
    this.#hash = createHash('md5')
  }
}
