// A TCP proxy of the tests' own in front of a service, to make the network stop answering:
// `hold()` keeps every byte both ways (connections stay open, nothing arrives, as when packets
// are dropped silently, with no RST), `pass()` lets them through again. It counts the client
// requests left waiting on a held connection and how long, to see whether the client frees its sockets.
import net, { type AddressInfo, type Socket } from 'node:net'
import type { Test } from 'tap'

/** A client connection and its upstream; `heldSince`: when the first byte it sent was held (a request waiting). */
interface Pair { client: Socket, upstream: Socket, heldSince?: number, up: Buffer[], down: Buffer[] }

export class HoldingProxy {
  readonly #server: net.Server
  readonly #pairs = new Set<Pair>()
  #holding = false

  private constructor (server: net.Server) {
    this.#server = server
  }

  /** `port`: where to listen (default: a free one). */
  static async start (t: Test, target: { host: string, port: number }, port = 0): Promise<HoldingProxy> {
    const server = net.createServer()
    const proxy = new HoldingProxy(server)
    server.on('connection', client => { proxy.#connect(client, target) })
    await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
    t.teardown(() => proxy.close())
    return proxy
  }

  #connect (client: Socket, target: { host: string, port: number }): void {
    const upstream = net.connect(target.port, target.host)
    const pair: Pair = { client, upstream, up: [], down: [] }
    this.#pairs.add(pair)
    const end = () => {
      this.#pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end).on('end', end)
    upstream.on('error', end).on('close', end).on('end', end)
    // Read always (so a client that closes is seen closing); held bytes wait in memory.
    client.on('data', (d: Buffer) => {
      if (!this.#holding) return upstream.write(d)
      pair.heldSince ??= Date.now()
      pair.up.push(d)
    })
    upstream.on('data', (d: Buffer) => { if (this.#holding) pair.down.push(d); else client.write(d) })
  }

  get url (): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  /** Client connections open now (held or not). */
  get open (): number {
    return this.#pairs.size
  }

  /**
   * How long the oldest request still open has waited for the held network, in ms (0: none): a
   * client that gives up at its deadline closes the connection; an idle pooled one does not count.
   */
  get oldestHeldMs (): number {
    const now = Date.now()
    return Math.max(0, ...[...this.#pairs].map(p => p.heldSince === undefined ? 0 : now - p.heldSince))
  }

  hold (): void {
    this.#holding = true
  }

  pass (): void {
    this.#holding = false
    for (const pair of this.#pairs) {
      pair.heldSince = undefined
      for (const d of pair.up.splice(0)) pair.upstream.write(d)
      for (const d of pair.down.splice(0)) pair.client.write(d)
    }
  }

  async close (): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy()
      upstream.destroy()
    }
    await new Promise(resolve => this.#server.close(resolve))
  }
}
