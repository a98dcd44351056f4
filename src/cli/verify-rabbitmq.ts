import { EventEmitter, once } from 'node:events'
import type { Channel, ConsumeMessage } from 'amqplib'
import { messageOf } from '../errors.js'
import type { DestinationConfig } from '../routing/index.js'
import { CliFailure } from './failure.js'
import type { WatchContext, Watcher } from './verify-types.js'

/**
 * A private queue bound to the destination's exchange with the test event's routing key: bound
 * before the event is published, so it cannot pass by unseen.
 */
export async function watchRabbitMq (
  destination: Extract<DestinationConfig, { broker: 'rabbitmq' }>, ctx: WatchContext
): Promise<Watcher> {
  const where = `exchange ${destination.exchange} (routing key ${ctx.routingKey})`
  const arrived: ConsumeMessage[] = []
  const arrivals = new EventEmitter()
  let ch: Channel
  try {
    ch = await (await ctx.connections.get(destination.url)).createChannel()
    ch.on('error', () => {})
    await ch.checkExchange(destination.exchange)
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true })
    await ch.bindQueue(queue, destination.exchange, ctx.routingKey)
    await ch.consume(queue, msg => {
      if (msg === null) return
      arrived.push(msg)
      arrivals.emit('message')
    })
  } catch (err) {
    throw new CliFailure(3, `cannot watch ${where}: ${messageOf(err)}`)
  }
  const ours = (marks: readonly string[]) =>
    arrived.find(m => marks.some(mark => m.properties.messageId === mark || m.content.includes(mark)))
  return {
    where,
    async receive (marks, until) {
      let msg = ours(marks)
      while (msg === undefined && Date.now() < until) {
        await once(arrivals, 'message', { signal: AbortSignal.timeout(Math.max(1, until - Date.now())) }).catch(() => undefined)
        msg = ours(marks)
      }
      if (msg === undefined) return undefined
      let envelope: unknown
      try {
        envelope = JSON.parse(msg.content.toString())
      } catch {
        envelope = {}
      }
      const found = msg
      return {
        envelope,
        problems: [],
        transportTenant: { where: 'AMQP header x-tenant-id', value: (found.properties.headers ?? {})['x-tenant-id'] },
        remove: async () => {
          ch.ack(found)
          // The ack is only known to have arrived once the channel has closed cleanly after it.
          await ch.close()
          return 'acked'
        }
      }
    },
    async close () {
      await ch.close().catch(() => undefined)
    }
  }
}
