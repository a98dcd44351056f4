// Draft Genie's TypeScript EventConsumer (seed 004), as its guide writes it, with amqplib: a
// service queue bound to the `draft-genie.events` topic exchange, handlers registered per
// `eventType`, each reading `eventData.payload` and the camelCase fields. A message no handler is
// registered for is acked and dropped, as the guide's consumer does. Each handled event is printed
// as one JSON line. Configuration is the guide's: RABBITMQ_URL, RABBITMQ_EXCHANGE, SPEAKER_QUEUE...
//
//   npx tsx examples/consumers/draft-genie-consumer.ts speaker draft rag evaluation
import amqplib, { type Channel, type ChannelModel } from 'amqplib'

interface DraftGenieEvent {
  eventId: string
  eventType: string
  aggregateId: string
  aggregateType: string
  timestamp: string
  version: number
  correlationId?: string
  payload: Record<string, unknown>
}

type Handler = (eventData: DraftGenieEvent) => Promise<void>

class EventConsumer {
  readonly #options: { url: string, queue: string, routingKey: string, exchange: string, prefetchCount: number }
  readonly #handlers = new Map<string, Handler>()
  #connection: ChannelModel | undefined
  #channel: Channel | undefined

  constructor (options: { url: string, queue: string, routingKey: string, exchange?: string, prefetchCount?: number }) {
    this.#options = { exchange: 'draft-genie.events', prefetchCount: 10, ...options }
  }

  async connect (): Promise<void> {
    this.#connection = await amqplib.connect(this.#options.url)
    this.#channel = await this.#connection.createChannel()
    await this.#channel.assertExchange(this.#options.exchange, 'topic', { durable: true })
    await this.#channel.assertQueue(this.#options.queue, { durable: true })
    await this.#channel.bindQueue(this.#options.queue, this.#options.exchange, this.#options.routingKey)
    await this.#channel.prefetch(this.#options.prefetchCount)
  }

  registerHandler (eventType: string, handler: Handler): void {
    this.#handlers.set(eventType, handler)
  }

  async start (): Promise<void> {
    const channel = this.#channel as Channel
    await channel.consume(this.#options.queue, msg => {
      if (msg === null) return
      const eventData = JSON.parse(msg.content.toString()) as DraftGenieEvent
      const handler = this.#handlers.get(eventData.eventType)
      if (handler === undefined) {
        // The guide's consumer: nothing to do, acked. (Said on stderr here, so that a lost event shows.)
        console.error(`no handler for eventType ${JSON.stringify(eventData.eventType)}: acked and dropped`)
        channel.ack(msg)
        return
      }
      handler(eventData).then(() => channel.ack(msg), () => channel.nack(msg))
    })
  }

  async disconnect (): Promise<void> {
    await this.#connection?.close()
  }
}

const QUEUES: Record<string, [string, string, string[]]> = {
  speaker: [
    process.env.SPEAKER_QUEUE ?? 'speaker.events', 'speaker.*',
    ['speaker.onboarded', 'speaker.updated', 'speaker.bucket_reassigned']
  ],
  draft: [
    process.env.DRAFT_QUEUE ?? 'draft.events', 'draft.*',
    ['draft.ingested', 'draft.correction_vector_created', 'draft.correction_vector_updated']
  ],
  rag: [process.env.RAG_QUEUE ?? 'rag.events', 'rag.*', ['rag.dfn_generated']],
  evaluation: [
    process.env.EVALUATION_QUEUE ?? 'evaluation.events', 'evaluation.*',
    ['evaluation.started', 'evaluation.completed', 'evaluation.failed']
  ]
}

// One service per family, as Draft Genie runs them; here in one process for the example.
const consumers: EventConsumer[] = []
for (const family of process.argv.length > 2 ? process.argv.slice(2) : ['speaker']) {
  const spec = QUEUES[family]
  if (spec === undefined) throw new Error(`no family ${family}: speaker, draft, rag or evaluation`)
  const [queue, routingKey, types] = spec
  const consumer = new EventConsumer({
    url: process.env.RABBITMQ_URL ?? 'amqp://guest:guest@localhost:5672',
    exchange: process.env.RABBITMQ_EXCHANGE ?? 'draft-genie.events',
    queue,
    routingKey
  })
  await consumer.connect()
  for (const type of types) {
    consumer.registerHandler(type, async eventData => {
      console.log(JSON.stringify({
        consumer: `draft-genie typescript ${family}`,
        eventId: eventData.eventId,
        eventType: eventData.eventType,
        aggregateId: eventData.aggregateId,
        aggregateType: eventData.aggregateType,
        correlationId: eventData.correlationId,
        version: eventData.version,
        timestamp: eventData.timestamp,
        payload: eventData.payload
      }))
    })
  }
  await consumer.start()
  consumers.push(consumer)
  console.log(JSON.stringify({ consumer: `draft-genie typescript ${family}`, ready: queue }))
}
const stop = () => { void Promise.all(consumers.map(c => c.disconnect())).finally(() => process.exit(0)) }
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
