import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { buildApp } from 'fauxqs'
import { ACCOUNT, EventBridgeEmulator, type Target } from './eventbridge.js'
import { errorToXml, jsonToXml, queryToJson } from './sqs-query.js'

// One endpoint, as LocalStack has, for what the seed platform uses of AWS: SQS through fauxqs, in
// both protocols (JSON for the gateway and current SDKs, query/XML for older ones such as Debian's
// boto3 1.26), and EventBridge (buses, rules, SQS targets) delivering into those queues.
// `npm run aws-emulator` runs it on port 4566; tests start it on a free port.

type Fauxqs = ReturnType<typeof buildApp>

// Inside, fauxqs names its queues http://sqs.<region>.fauxqs.internal/<account>/<name>; a queue URL
// a client sends is taken by the queue's name, whatever host it names (127.0.0.1, localhost, ...),
// and the queue URLs in answers name the host the client called.
const INSIDE = 'fauxqs.internal'
const INSIDE_URL = /http:\/\/sqs\.[a-z0-9-]+\.fauxqs\.internal\/\d{12}\//g

export class AwsEmulator {
  readonly eventBridge: EventBridgeEmulator
  readonly #fauxqs: Fauxqs
  readonly #server: Server
  readonly #inside: string
  #endpoint = ''

  private constructor (region: string) {
    this.#fauxqs = buildApp({ logger: false, host: INSIDE, defaultRegion: region })
    this.#inside = `http://sqs.${region}.${INSIDE}/${ACCOUNT}/`
    this.eventBridge = new EventBridgeEmulator(region, async (target, body) => { await this.#deliver(target, body) })
    this.#server = createServer((req, res) => { void this.#handle(req, res) })
  }

  static async start (options: { port?: number, host?: string, region?: string } = {}): Promise<AwsEmulator> {
    const emulator = new AwsEmulator(options.region ?? process.env.AWS_REGION ?? 'us-east-1')
    await emulator.#fauxqs.ready()
    emulator.#server.listen(options.port ?? 4566, options.host ?? '127.0.0.1')
    await once(emulator.#server, 'listening')
    const { port } = emulator.#server.address() as { port: number }
    emulator.#endpoint = `http://${options.host ?? '127.0.0.1'}:${port}`
    return emulator
  }

  /** `http://127.0.0.1:4566`: what AWS_ENDPOINT_URL should say. */
  get endpoint (): string {
    return this.#endpoint
  }

  /** A queue's URL, as clients of this endpoint see it. */
  queueUrl (name: string): string {
    return `${this.#endpoint}/${ACCOUNT}/${name}`
  }

  /** Creates a queue (FIFO when the name ends in .fifo); resolves with its URL. */
  async createQueue (name: string, attributes: Record<string, string> = {}): Promise<string> {
    const fifo = name.endsWith('.fifo') ? { FifoQueue: 'true' } : {}
    await this.#sqs('CreateQueue', { QueueName: name, Attributes: { ...fifo, ...attributes } })
    return this.queueUrl(name)
  }

  async stop (): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
    await this.#fauxqs.close()
  }

  /**
   * One SQS call of the JSON protocol, to fauxqs; the queue URL is found by the queue's name,
   * whatever host it names.
   */
  async #sqs (
    action: string, input: Record<string, unknown>
  ): Promise<{ status: number, json: Record<string, unknown>, queryError?: string }> {
    const { QueueUrl } = input
    const body = typeof QueueUrl === 'string' ? { ...input, QueueUrl: this.#inside + QueueUrl.slice(QueueUrl.lastIndexOf('/') + 1) } : input
    const res = await this.#fauxqs.inject({
      method: 'POST',
      url: '/',
      headers: { host: INSIDE, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}` },
      payload: JSON.stringify(body)
    })
    const json = res.body === '' ? {} : JSON.parse(res.body) as Record<string, unknown>
    const queryError = res.headers['x-amzn-query-error']
    return { status: res.statusCode, json, ...(typeof queryError === 'string' ? { queryError } : {}) }
  }

  async #deliver (target: Target, body: string): Promise<void> {
    const name = target.Arn.split(':').at(-1) as string
    const fifo = name.endsWith('.fifo')
      ? { MessageGroupId: target.SqsParameters?.MessageGroupId ?? 'default', MessageDeduplicationId: randomUUID() }
      : {}
    await this.#sqs('SendMessage', { QueueUrl: name, MessageBody: body, ...fifo })
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    const outside = `http://${req.headers.host ?? this.#endpoint.slice(7)}/${ACCOUNT}/`
    const send = (status: number, type: string, payload: string) => {
      res.writeHead(status, { 'content-type': type })
      res.end(payload.replaceAll(INSIDE_URL, outside))
    }
    try {
      const target = String(req.headers['x-amz-target'] ?? '')
      const contentType = String(req.headers['content-type'] ?? '')
      if (req.method === 'GET' && req.url === '/health') return send(200, 'application/json', '{"status":"ok"}')
      if (target.startsWith('AmazonSQS.')) {
        const input = text === '' ? {} : JSON.parse(text) as Record<string, unknown>
        const { status, json, queryError } = await this.#sqs(target.slice('AmazonSQS.'.length), input)
        if (queryError !== undefined) res.setHeader('x-amzn-query-error', queryError)
        return send(status, 'application/x-amz-json-1.0', JSON.stringify(json))
      }
      if (target.startsWith('AWSEvents.')) {
        const input = text === '' ? {} : JSON.parse(text) as Record<string, unknown>
        const { status, json } = await this.eventBridge.handle(target, input)
        return send(status, 'application/x-amz-json-1.1', JSON.stringify(json))
      }
      if (contentType.includes('application/x-www-form-urlencoded')) {
        const { action, input } = queryToJson(new URLSearchParams(text))
        const requestId = randomUUID()
        const { status, json, queryError } = await this.#sqs(action, input)
        return send(status, 'text/xml', status < 300 ? jsonToXml(action, json, requestId) : errorToXml(json, queryError, requestId))
      }
      const unknownOperation = { __type: 'UnknownOperationException', message: 'SQS (JSON or query protocol) and EventBridge only' }
      send(400, 'application/json', JSON.stringify(unknownOperation))
    } catch (err) {
      send(500, 'application/json', JSON.stringify({ __type: 'InternalFailure', message: (err as Error).message }))
    }
  }
}
