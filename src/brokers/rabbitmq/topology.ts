import type { Channel, ChannelModel } from 'amqplib'
import { codeOf } from '../../errors.js'

export interface TopologyOptions {
  exchange: string
  /** Fanout exchange + durable queue of the same name that keep unroutable events. */
  alternateExchange?: string
}

export interface TopologyResult {
  /** The alternate exchange in force, or undefined when unroutable events will be returned. */
  alternateExchange?: string
  /** Set when the exchange already existed with other arguments (no alternate exchange of ours). */
  warning?: string
}

const PRECONDITION_FAILED = 406

/**
 * Declares what publishing needs: the durable topic exchange and, unless switched off, the
 * alternate exchange with its durable queue. Idempotent; run after every (re)connect.
 */
export async function declareTopology (model: ChannelModel, options: TopologyOptions): Promise<TopologyResult> {
  const ch = await model.createChannel()
  // A refused declaration closes the channel with an 'error' event; the promise carries it.
  ch.on('error', () => {})
  const ae = options.alternateExchange
  try {
    if (ae !== undefined) {
      await ch.assertExchange(ae, 'fanout', { durable: true })
      await ch.assertQueue(ae, { durable: true })
      await ch.bindQueue(ae, ae, '')
    }
    await ch.assertExchange(options.exchange, 'topic', {
      durable: true,
      ...(ae === undefined ? {} : { arguments: { 'alternate-exchange': ae } })
    })
    await ch.close()
    return ae === undefined ? {} : { alternateExchange: ae }
  } catch (err) {
    if (codeOf(err) !== PRECONDITION_FAILED) throw err
    // The exchange exists with other arguments (declared elsewhere without our alternate
    // exchange). Use it as it is; unroutable events then come back and are refused.
    const check: Channel = await model.createChannel()
    check.on('error', () => {})
    await check.checkExchange(options.exchange)
    await check.close()
    return {
      warning: `exchange '${options.exchange}' exists with other arguments; ` +
        'publishing to it without an alternate exchange (unroutable events are refused with 502)'
    }
  }
}
