import type { ChannelModel } from 'amqplib'
import { declareTopology } from '../brokers/rabbitmq/topology.js'
import { codeOf, messageOf } from '../errors.js'
import type { DestinationConfig } from '../routing/index.js'
import type { CliConnections } from './amqp.js'
import type { QueueSpec } from './queues-file.js'
import { CliFailure } from './failure.js'
import type { Steps } from './steps.js'

const NOT_FOUND = 404
const PRECONDITION_FAILED = 406

async function exists (conn: ChannelModel, kind: 'exchange' | 'queue', name: string): Promise<boolean> {
  // A passive check that fails closes its channel, so each check gets its own.
  const ch = await conn.createChannel()
  ch.on('error', () => {})
  try {
    await (kind === 'exchange' ? ch.checkExchange(name) : ch.checkQueue(name))
    await ch.close()
    return true
  } catch (err) {
    if (codeOf(err) === NOT_FOUND) return false
    throw err
  }
}

/**
 * One RabbitMQ destination: what the gateway declares for publishing (the exchange and its
 * alternate exchange, through the gateway's own `declareTopology`), plus what consumers rely on:
 * the dead-letter exchange `<exchange>.dlx` with queue `<exchange>.dead`, and the destination's
 * queues from the queues file. A queue is declared as its consumers declare it, durable and with
 * no arguments, unless the file asks it to dead-letter to the DLX: a consumer that declares the
 * queue itself with other arguments than ours would fail at start with 406 PRECONDITION_FAILED.
 */
export async function provisionRabbitMq (
  destination: Extract<DestinationConfig, { broker: 'rabbitmq' }>, queues: readonly QueueSpec[], connections: CliConnections, steps: Steps
): Promise<void> {
  let conn: ChannelModel
  try {
    conn = await connections.get(destination.url)
  } catch (err) {
    throw new CliFailure(2, messageOf(err))
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
      try {
        await ch.assertQueue(q.name, { durable: true, ...(q.deadLetter === true ? { deadLetterExchange: dlx } : {}) })
      } catch (err) {
        if (codeOf(err) !== PRECONDITION_FAILED) throw err
        throw new CliFailure(3, q.deadLetter === true
          ? `queue ${q.name} exists with other arguments than x-dead-letter-exchange ${dlx}; ` +
            'RabbitMQ does not change a queue\'s arguments: give it the dead-letter exchange with a policy instead ' +
            '(rabbitmqctl set_policy), or delete the queue first'
          // Before queues were declared as their consumers declare them, provision gave each one the DLX.
          : `queue ${q.name} exists with arguments (an earlier provision gave every queue x-dead-letter-exchange ${dlx}); ` +
            'RabbitMQ does not change a queue\'s arguments: to keep them, say "deadLetter": true for it in the queues file; ' +
            'to have it as its consumers declare it, delete it first')
      }
      for (const binding of q.bindings) await ch.bindQueue(q.name, exchange, binding)
      const deadLetters = q.deadLetter === true ? `, dead letters to ${dlx}` : ''
      steps.say(`queue ${q.name} (durable${deadLetters}) bound with ${q.bindings.join(', ')}`, !hadQ)
    }
    await ch.close()
  } catch (err) {
    if (err instanceof CliFailure) throw err
    throw new CliFailure(3, `the broker refused a declaration: ${messageOf(err)}`)
  }
}
