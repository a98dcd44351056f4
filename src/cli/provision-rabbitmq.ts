import type { ChannelModel } from 'amqplib'
import { declareTopology } from '../brokers/rabbitmq/topology.js'
import type { Destination } from '../routing/index.js'
import type { CliConnections } from './amqp.js'
import type { QueueSpec } from './queues-file.js'
import { CliFailure } from './failure.js'
import type { Steps } from './steps.js'

const NOT_FOUND = 404

async function exists (conn: ChannelModel, kind: 'exchange' | 'queue', name: string): Promise<boolean> {
  // A passive check that fails closes its channel, so each check gets its own.
  const ch = await conn.createChannel()
  ch.on('error', () => {})
  try {
    await (kind === 'exchange' ? ch.checkExchange(name) : ch.checkQueue(name))
    await ch.close()
    return true
  } catch (err) {
    if ((err as { code?: number }).code === NOT_FOUND) return false
    throw err
  }
}

/**
 * One RabbitMQ destination: what the gateway declares for publishing (the exchange and its
 * alternate exchange, through the gateway's own `declareTopology`), plus what consumers rely on:
 * the dead-letter exchange `<exchange>.dlx` with queue `<exchange>.dead`, and the destination's
 * queues from the queues file, dead-lettering there.
 */
export async function provisionRabbitMq (destination: Extract<Destination, { broker: 'rabbitmq' }>, queues: readonly QueueSpec[], connections: CliConnections, steps: Steps): Promise<void> {
  let conn: ChannelModel
  try {
    conn = await connections.get(destination.url)
  } catch (err) {
    throw new CliFailure(2, (err as Error).message)
  }
  const { exchange } = destination
  const ae = destination.alternateExchange
  const dlx = `${exchange}.dlx`
  const dead = `${exchange}.dead`
  try {
    const had = {
      ae: ae !== undefined && await exists(conn, 'exchange', ae),
      aeQueue: ae !== undefined && await exists(conn, 'queue', ae),
      exchange: await exists(conn, 'exchange', exchange)
    }
    const topology = await declareTopology(conn, { exchange, ...(ae === undefined ? {} : { alternateExchange: ae }) })
    if (ae !== undefined) {
      steps.say(`exchange ${ae} (fanout, durable): keeps unroutable events`, !had.ae)
      steps.say(`queue ${ae} (durable) bound to it`, !had.aeQueue)
    }
    if (topology.warning === undefined) {
      steps.say(`exchange ${exchange} (topic, durable${ae === undefined ? '' : `, alternate-exchange ${ae}`})`, !had.exchange)
    } else {
      // Declared elsewhere with other arguments: the gateway uses it as it is, and so do we.
      steps.say(`exchange ${exchange} (topic, declared elsewhere; used as it is)`, false)
      steps.warn(topology.warning)
    }
    const ch = await conn.createChannel()
    ch.on('error', () => {})
    const hadDlx = await exists(conn, 'exchange', dlx)
    await ch.assertExchange(dlx, 'topic', { durable: true })
    steps.say(`exchange ${dlx} (topic, durable): dead letters`, !hadDlx)
    const hadDead = await exists(conn, 'queue', dead)
    await ch.assertQueue(dead, { durable: true })
    await ch.bindQueue(dead, dlx, '#')
    steps.say(`queue ${dead} (durable) bound to ${dlx} with #`, !hadDead)
    for (const q of queues) {
      const hadQ = await exists(conn, 'queue', q.name)
      await ch.assertQueue(q.name, { durable: true, deadLetterExchange: dlx })
      for (const binding of q.bindings) await ch.bindQueue(q.name, exchange, binding)
      steps.say(`queue ${q.name} (durable, dead letters to ${dlx}) bound with ${q.bindings.join(', ')}`, !hadQ)
    }
    await ch.close()
  } catch (err) {
    throw new CliFailure(3, `the broker refused a declaration: ${(err as Error).message}`)
  }
}
