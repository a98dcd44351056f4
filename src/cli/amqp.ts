import amqplib, { type ChannelModel } from 'amqplib'
import { messageOf } from '../errors.js'
import { safeUrl } from './common.js'

/** One connection per URL for a CLI run: destinations with the same URL share it, as in the gateway. */
export class CliConnections {
  readonly #byUrl = new Map<string, Promise<ChannelModel>>()

  /** Rejects with a message naming the (masked) URL when RabbitMQ cannot be reached. */
  get (url: string): Promise<ChannelModel> {
    let conn = this.#byUrl.get(url)
    if (conn === undefined) {
      conn = amqplib.connect(url, { timeout: 5000 }).catch((err: unknown) => {
        throw new Error(`cannot connect to ${safeUrl(url)}: ${messageOf(err)}`)
      })
      this.#byUrl.set(url, conn)
    }
    return conn
  }

  async closeAll (): Promise<void> {
    const closing = [...this.#byUrl.values()].map(async c => { await (await c).close() })
    await Promise.all(closing.map(p => p.catch(() => undefined)))
    this.#byUrl.clear()
  }
}
