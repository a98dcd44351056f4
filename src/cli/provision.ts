// npm run provision [-- --destination NAME]... [--queues provision/queues.json]
// (the queues file: RabbitMQ consumers' queues and their bindings, EventBridge rules to SQS queues)
// Declares what each destination of the routing (ROUTES_FILE, else the one BROKER names) needs,
// all of them unless --destination names some. Idempotent: a second run changes nothing and says
// so. Exit codes: 0 done, 1 bad config or queues file, 2 broker not reachable, 3 the broker
// refused a declaration.
import type { DestinationConfig } from '../routing/index.js'
import { CliConnections } from './amqp.js'
import { cliArgs, exitWith } from './common.js'
import { provisionEventBridge, sourcesOnBus } from './provision-eventbridge.js'
import { provisionRabbitMq } from './provision-rabbitmq.js'
import { provisionSqs } from './provision-sqs.js'
import { queuesByDestination, readQueuesFile, rulesByDestination, type QueueSpec, type RuleSpec } from './queues-file.js'
import { cliSetup, describeDestination, selectDestinations } from './routing.js'
import { CliFailure } from './failure.js'
import { Steps } from './steps.js'

const values = cliArgs('npm run provision -- [--destination NAME]... [--queues FILE]', {
  destination: { type: 'string', multiple: true },
  queues: { type: 'string' }
})
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
    case 'kafka':
      // Not yet: topics come from the cluster's auto-creation or the cluster's own tools.
      steps.warn(`Kafka topics are not created by provision yet (topic ${destination.topic}); create them with the cluster's tools`)
      return undefined
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
