// The watcher for each kind of destination, chosen here; their shared shapes are in verify-types.ts.
import type { DestinationConfig } from '../routing/index.js'
import { watchKafka } from './verify-kafka.js'
import type { WatchContext, Watcher } from './verify-types.js'
import { watchLocal } from './verify-local.js'
import { watchRabbitMq } from './verify-rabbitmq.js'
import { ruleQueueUrl } from './verify-rule.js'
import { watchSqs } from './verify-sqs.js'

async function watchRule (destination: Extract<DestinationConfig, { broker: 'eventbridge' }>, ctx: WatchContext): Promise<Watcher> {
  const rule = {
    bus: ctx.message?.busName ?? destination.busName,
    source: ctx.message?.source ?? destination.envelopeOptions.source,
    detailType: ctx.message?.detailType ?? ctx.type
  }
  const region = destination.region === undefined ? {} : { region: destination.region }
  const endpoint = destination.endpoint === undefined ? {} : { endpoint: destination.endpoint }
  const queueUrl = ctx.ruleQueueUrl ?? await ruleQueueUrl(rule.bus, { ...region, ...endpoint }, rule.source, rule.detailType)
  return watchSqs(queueUrl, region, rule)
}

/** Starts watching; rejects with a CliFailure when it cannot (exit 1 for config, 3 otherwise). */
export function watch (destination: DestinationConfig, ctx: WatchContext): Promise<Watcher> {
  switch (destination.broker) {
    case 'rabbitmq': return watchRabbitMq(destination, ctx)
    case 'sqs': return watchSqs(destination.queueUrl, destination, undefined)
    case 'eventbridge': return watchRule(destination, ctx)
    case 'kafka': return watchKafka(destination, ctx, ctx.kafka)
    case 'local': return watchLocal(ctx)
  }
}
