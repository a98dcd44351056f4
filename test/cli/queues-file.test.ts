import t from 'tap'
import { loadCatalog } from '../../src/catalog/index.js'
import { queuesByDestination, readQueuesFile, rulesByDestination } from '../../src/cli/queues-file.js'
import { patternOf } from '../../src/cli/provision-eventbridge.js'
import { CliFailure } from '../../src/cli/failure.js'
import { resolveRouting, type DestinationConfig } from '../../src/routing/index.js'
import { readRoutesFile } from '../../src/routing/routes-file.js'
import { createAjv } from '../../src/validation/index.js'
import { testConfig } from '../helper.js'

const rabbit = (name: string): DestinationConfig => ({
  name,
  broker: 'rabbitmq',
  url: 'amqp://127.0.0.1',
  exchange: `${name}.events`,
  envelope: 'cloudevents',
  envelopeOptions: { source: 's' },
  formats: new Map(),
  mode: 'sync'
})
const sqs: DestinationConfig = {
  name: 'surveys',
  broker: 'sqs',
  queueUrl: 'http://127.0.0.1/0/q',
  maxMessageBytes: 262144,
  envelope: 'cloudevents',
  envelopeOptions: { source: 's' },
  formats: new Map(),
  mode: 'sync'
}

const failure = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    if (err instanceof CliFailure && err.code === 1) return err.message
    throw err
  }
  throw new Error('did not fail')
}

t.test('a queue without a destination goes to the only RabbitMQ destination', async t => {
  const placed = queuesByDestination([{ name: 'q', bindings: ['#'] }], [sqs, rabbit('rabbitmq')])
  t.same([...placed], [['rabbitmq', [{ name: 'q', bindings: ['#'] }]]])
})

t.test('a queue without a destination is an error when there are several RabbitMQ destinations, or none', async t => {
  t.match(failure(() => queuesByDestination([{ name: 'q', bindings: ['#'] }], [rabbit('ocelot'), rabbit('draft-genie')])),
    /--queues: queue q names no destination, and the routing has several RabbitMQ destinations \(ocelot, draft-genie\): add "destination"/)
  t.match(failure(() => queuesByDestination([{ name: 'q', bindings: ['#'] }], [sqs])), /queue q: the routing has no RabbitMQ destination/)
})

t.test('a queue naming a destination that is not a RabbitMQ one of the routing is an error; every problem is told', async t => {
  const message = failure(() => queuesByDestination([
    { name: 'a', destination: 'surveys', bindings: ['#'] },
    { name: 'b', destination: 'nope', bindings: ['#'] }
  ], [sqs, rabbit('ocelot')]))
  t.match(message, /queue a: destination 'surveys' is sqs, not RabbitMQ/)
  t.match(message, /queue b: no destination 'nope' in the routing \(RabbitMQ destinations: ocelot\)/)
})

t.test('provision/queues.example.json places every queue and rule with the seed platform routes', async t => {
  const config = testConfig(t)
  const ajv = createAjv()
  const routing = resolveRouting(
    readRoutesFile('examples/routes.seed-platform.json', ajv, {}),
    loadCatalog(config, ajv).list(),
    config,
    'seed'
  )
  const file = readQueuesFile('provision/queues.example.json')
  const placed = queuesByDestination(file.queues, routing.destinations)
  t.same([...placed].map(([d, qs]) => [d, qs.map(q => q.name)]), [
    ['ocelot', ['focus_lite_calls', 'notification_sentiment']],
    ['draft-genie', ['speaker.events', 'draft.events', 'rag.events', 'evaluation.events']]
  ])
  t.notOk(file.queues.some(q => q.deadLetter === true), 'declared as the seeds\' consumers declare them: plain')
  t.same(
    [...rulesByDestination(file.rules ?? [], routing.destinations)],
    [['transcripts', [{ name: 'capture-transcripts-rule', destination: 'transcripts', queue: 'capture-transcripts' }]]]
  )
  const transcripts = routing.destinations.find(d => d.name === 'transcripts')
  if (transcripts?.broker !== 'eventbridge') throw new Error('no transcripts destination')
  t.same(
    patternOf(transcripts),
    { source: ['com.yourapp.transcription'], 'detail-type': ['BatchProcessingCompleted'] },
    'seed 001\'s rule pattern'
  )
  t.match(
    failure(() => rulesByDestination([{ name: 'r', destination: 'surveys', queue: 'q' }], routing.destinations)),
    /rule r: destination 'surveys' is sqs, not EventBridge/
  )
})

t.test('a queues file that is not valid is an error naming the field', async t => {
  t.match(failure(() => readQueuesFile('test/cli/missing.json')), /--queues: cannot read test\/cli\/missing.json/)
  t.match(failure(() => readQueuesFile('package.json')), /--queues: package.json is not valid: .*is not an allowed property/)
})
