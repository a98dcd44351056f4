// npm run tail -- --binding 'comms.#' [--binding 'speaker.*'] [--prefetch 20] [--count N] [--show-sensitive]
// Consumes what the exchange receives through a private queue and prints one JSON line per
// event. Fields the catalog marks as sensitive (transcripts, ...) are masked unless asked for.
import { parseArgs } from 'node:util'
import amqplib from 'amqplib'
import { BUILTIN_ENTRIES } from '../catalog/index.js'
import { cliConfig, safeUrl } from './common.js'

const sensitiveByType = new Map(BUILTIN_ENTRIES.map(e => [e.type, e.sensitive ?? []]))

export function mask (type: string, data: unknown): unknown {
  const fields = sensitiveByType.get(type) ?? []
  if (fields.length === 0 || typeof data !== 'object' || data === null) return data
  const copy: Record<string, unknown> = { ...(data as Record<string, unknown>) }
  for (const f of fields) if (f in copy && copy[f] !== null) copy[f] = '[redacted]'
  return copy
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      binding: { type: 'string', multiple: true, default: ['#'] },
      prefetch: { type: 'string', default: '20' },
      count: { type: 'string' },
      'show-sensitive': { type: 'boolean', default: false }
    }
  })
  const config = await cliConfig()
  const prefetch = Number(values.prefetch)
  const limit = values.count === undefined ? Infinity : Number(values.count)
  if (!Number.isInteger(prefetch) || prefetch < 1 || Number.isNaN(limit)) {
    console.error('tail: --prefetch and --count take whole numbers')
    process.exit(1)
  }
  let conn: amqplib.ChannelModel
  try {
    conn = await amqplib.connect(config.AMQP_URL, { timeout: 5000 })
  } catch (err) {
    console.error(`cannot connect to ${safeUrl(config.AMQP_URL)}: ${(err as Error).message}`)
    process.exit(2)
  }
  const ch = await conn.createChannel()
  await ch.checkExchange(config.AMQP_EXCHANGE)
  const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true })
  for (const b of values.binding) await ch.bindQueue(queue, config.AMQP_EXCHANGE, b)
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
      const env = JSON.parse(msg.content.toString()) as Record<string, unknown>
      const type = String(env.type)
      line = { routingKey: msg.fields.routingKey, ...env, data: values['show-sensitive'] ? env.data : mask(type, env.data) }
    } catch {
      line = { routingKey: msg.fields.routingKey, messageId: msg.properties.messageId, error: 'not a JSON envelope', bytes: msg.content.length }
    }
    process.stdout.write(JSON.stringify(line) + '\n')
    ch.ack(msg)
    if (++seen >= limit) void stop()
  })
  console.error(`tail: ${config.AMQP_EXCHANGE} on ${safeUrl(config.AMQP_URL)}, bindings ${values.binding.join(', ')}; Ctrl-C to stop`)
}

await main()
