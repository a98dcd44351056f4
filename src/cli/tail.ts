// npm run tail -- [--destination NAME] --binding 'comms.#' [--binding 'speaker.*'] [--prefetch 20] [--count N]
//   [--show-sensitive]
// npm run tail -- --destination KAFKA_DESTINATION [--topic T]... [--count N] [--show-sensitive]
// Consumes what a RabbitMQ destination's exchange receives through a private queue, or what a
// Kafka destination's topics receive from now on, and prints one JSON line per event. Fields the
// catalog marks as sensitive (transcripts, ...) are masked in the data, wherever the destination's
// envelope keeps it, unless asked for. Exit codes: 0 stopped (Ctrl-C or --count reached), 1 bad
// config or arguments, 2 the broker not reachable or the exchange or topic does not exist.
import amqplib from 'amqplib'
import { messageOf } from '../errors.js'
import type { DestinationConfig } from '../routing/index.js'
import { cliArgs, exitWith, isObject, safeUrl } from './common.js'
import { kafkaSettings } from '../config/index.js'
import { maskEnvelope, sensitiveFieldsOf } from './mask.js'
import { tailKafka } from './tail-kafka.js'
import { cliSetup, selectDestination } from './routing.js'

type RabbitDestination = Extract<DestinationConfig, { broker: 'rabbitmq' }>
type KafkaDestination = Extract<DestinationConfig, { broker: 'kafka' }>

const usage = 'npm run tail -- [--destination NAME] [--binding KEY]... [--topic T]... [--prefetch N] [--count N] [--show-sensitive]'
const values = cliArgs(usage, {
  destination: { type: 'string' },
  topic: { type: 'string', multiple: true, default: [] },
  binding: { type: 'string', multiple: true, default: ['#'] },
  prefetch: { type: 'string', default: '20' },
  count: { type: 'string' },
  'show-sensitive': { type: 'boolean', default: false }
})
const prefetch = Number(values.prefetch)
const limit = values.count === undefined ? Infinity : Number(values.count)
if (!Number.isInteger(prefetch) || prefetch < 1 || Number.isNaN(limit)) exitWith(1, 'tail: --prefetch and --count take whole numbers')

const setup = await cliSetup()

/** The destination to tail: the one named, or the only RabbitMQ one there is. */
function pick (): RabbitDestination | KafkaDestination {
  if (values.destination !== undefined) {
    const chosen = selectDestination(setup.routing, values.destination)
    if (chosen.broker !== 'rabbitmq' && chosen.broker !== 'kafka') {
      exitWith(1, `tail: destination '${chosen.name}' is ${chosen.broker}; tail reads RabbitMQ and Kafka destinations`)
    }
    return chosen
  }
  const rabbit = setup.routing.destinations.filter((d): d is RabbitDestination => d.broker === 'rabbitmq')
  const [only, ...more] = rabbit
  if (only === undefined) {
    const all = setup.routing.destinations.map(d => `${d.name} (${d.broker})`).join(', ')
    exitWith(1, `tail: the routing has no RabbitMQ destination (it has: ${all})`)
  }
  if (more.length > 0) {
    exitWith(1, `tail: the routing has several RabbitMQ destinations (${rabbit.map(d => d.name).join(', ')}); name one with --destination`)
  }
  return only
}

const chosen = pick()
const sensitive = sensitiveFieldsOf(setup.catalog)
// A message whose type cannot be told is masked for every sensitive field of any type: never shown in
// clear by default.
const allSensitive = [...new Set([...sensitive.values()].flat())]
const destination = chosen.broker === 'rabbitmq'
  ? chosen
  : await tailKafka(chosen, {
    topics: values.topic,
    limit,
    showSensitive: values['show-sensitive'],
    sensitive,
    all: allSensitive,
    security: kafkaSettings(setup.config).security
  })

/** The event type a message is of: its x-event-type header, else its type property. */
function typeOf (msg: amqplib.ConsumeMessage): string | undefined {
  const header: unknown = msg.properties.headers?.['x-event-type']
  const type: unknown = msg.properties.type
  return typeof header === 'string' ? header : typeof type === 'string' ? type : undefined
}

let conn: amqplib.ChannelModel
try {
  conn = await amqplib.connect(destination.url, { timeout: 5000 })
} catch (err) {
  exitWith(2, `tail: cannot connect to ${safeUrl(destination.url)}: ${messageOf(err)}`)
}
const ch = await conn.createChannel()
ch.on('error', () => {})
try {
  await ch.checkExchange(destination.exchange)
} catch (err) {
  await conn.close().catch(() => undefined)
  exitWith(2, `tail: exchange ${destination.exchange} cannot be read (does it exist? npm run provision declares it): ${messageOf(err)}`)
}
const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true })
for (const b of values.binding) await ch.bindQueue(queue, destination.exchange, b)
await ch.prefetch(prefetch)
let seen = 0
const stop = async () => {
  await conn.close().catch(() => undefined)
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
await ch.consume(queue, msg => {
  if (msg === null) return
  let line: Record<string, unknown>
  try {
    const envelope: unknown = JSON.parse(msg.content.toString())
    const type = typeOf(msg)
    // A type routed elsewhere that came here all the same is read as this destination's others are.
    const format = (type === undefined ? undefined : destination.formats.get(type)) ?? destination.formats.values().next().value
    const unknownType = type === undefined || (!sensitive.has(type) && !destination.formats.has(type))
    const masked = unknownType ? allSensitive : sensitive.get(type) ?? []
    const shown = values['show-sensitive'] || format === undefined ? envelope : maskEnvelope(envelope, format.placements, masked)
    line = { routingKey: msg.fields.routingKey, ...(isObject(shown) ? shown : { envelope: shown }) }
  } catch {
    line = {
      routingKey: msg.fields.routingKey,
      messageId: msg.properties.messageId,
      error: 'not a JSON envelope',
      bytes: msg.content.length
    }
  }
  process.stdout.write(JSON.stringify(line) + '\n')
  ch.ack(msg)
  if (++seen >= limit) void stop()
})
console.error(`tail: destination ${destination.name}, exchange ${destination.exchange} on ${safeUrl(destination.url)} ` +
  `(${destination.envelope} envelopes), bindings ${values.binding.join(', ')}; Ctrl-C to stop`)
