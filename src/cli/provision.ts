// npm run provision [-- --destination NAME]... [--queues provision/queues.json]
// [--partitions N] [--replication-factor N]
// (the queues file: RabbitMQ consumers' queues and their bindings, EventBridge rules to SQS queues;
// the Kafka flags: for the topics it creates, default the cluster's)
// Declares what each destination of the routing (ROUTES_FILE, else the one BROKER names) needs,
// all of them unless --destination names some. Idempotent: a second run changes nothing and says
// so. Exit codes: 0 done, 1 bad config or queues file, 2 broker not reachable, 3 the broker
// refused a declaration.
import type { DestinationConfig } from '../routing/index.js'
import { CliConnections } from './amqp.js'
import { cliArgs, exitWith } from './common.js'
import { kafkaSettings } from '../config/index.js'
import { provisionEventBridge, sourcesOnBus } from './provision-eventbridge.js'
import { provisionKafka } from './provision-kafka.js'
import { provisionRabbitMq } from './provision-rabbitmq.js'
import { provisionSqs } from './provision-sqs.js'
import { queuesByDestination, readQueuesFile, rulesByDestination, type QueueSpec, type RuleSpec } from './queues-file.js'
import { cliSetup, describeDestination, selectDestinations } from './routing.js'
import { CliFailure } from './failure.js'
import { Steps } from './steps.js'

const values = cliArgs('npm run provision -- [--destination NAME]... [--queues FILE] [--partitions N] [--replication-factor N]', {
  destination: { type: 'string', multiple: true },
  queues: { type: 'string' },
  partitions: { type: 'string' },
  'replication-factor': { type: 'string' }
})
/** Kafka topics: as asked, else the cluster's defaults (-1). */
const count = (flag: string, value: string | undefined) => {
  if (value === undefined) return -1
  const n = Number(value)
  return Number.isInteger(n) && n >= 1 && n <= 100_000 ? n : exitWith(1, `--${flag} takes a whole number from 1`)
}
const topicSettings = {
  partitions: count('partitions', values.partitions),
  replicationFactor: count('replication-factor', values['replication-factor'])
}
const setup = await cliSetup()
const selected = selectDestinations(setup.routing, values.destination)
const steps = new Steps()
const connections = new CliConnections()

async function provision (
  destination: DestinationConfig, queues: ReadonlyMap<string, QueueSpec[]>, rules: ReadonlyMap<string, RuleSpec[]>
): Promise<void> {
  switch (destination.broker) {
    case 'rabbitmq': return provisionRabbitMq(destination, queues.get(destination.name) ?? [], connections, steps)
    case 'sqs': return provisionSqs(destination, steps)
    case 'eventbridge': {
      const sources = sourcesOnBus(setup.routing, destination)
      return provisionEventBridge(destination, sources, setup.config.SQS_QUEUE_URL, rules.get(destination.name) ?? [], steps)
    }
    case 'kafka': return provisionKafka(destination, topicSettings, kafkaSettings(setup.config).security, steps)
    case 'local': return undefined
  }
}

try {
  // Read and placed before anything is declared: a wrong file changes nothing.
  const file = values.queues === undefined ? undefined : readQueuesFile(values.queues)
  const queues = file === undefined ? new Map<string, QueueSpec[]>() : queuesByDestination(file.queues, setup.routing.destinations)
  const rules = file === undefined ? new Map<string, RuleSpec[]>() : rulesByDestination(file.rules ?? [], setup.routing.destinations)
  for (const destination of selected) {
    const needs = destination.broker === 'local' ? ', needs nothing' : ''
    console.log(`Destination ${destination.name}: ${describeDestination(destination)}${needs}`)
    await provision(destination, queues, rules)
  }
} catch (err) {
  await connections.closeAll()
  if (err instanceof CliFailure) exitWith(err.code, err.message)
  throw err
}
await connections.closeAll()
console.log(steps.summary())
