import t from 'tap'
import { loadCatalog } from '../../src/catalog/index.js'
import { queuesByDestination, readQueuesFile } from '../../src/cli/queues-file.js'
import { CliFailure } from '../../src/cli/failure.js'
import { resolveRouting, type Destination } from '../../src/routing/index.js'
import { readRoutesFile } from '../../src/routing/routes-file.js'
import { createAjv } from '../../src/validation.js'
import { testConfig } from '../helper.js'
import { writeJson } from '../integration/cli-helper.js'

const rabbit = (name: string): Destination => ({ name, broker: 'rabbitmq', url: 'amqp://127.0.0.1', exchange: `${name}.events`, envelope: 'cloudevents', envelopeOptions: { source: 's' }, formats: new Map(), delivery: 'sync' })
const sqs: Destination = { name: 'surveys', broker: 'sqs', queueUrl: 'http://127.0.0.1/0/q', maxMessageBytes: 262144, envelope: 'cloudevents', envelopeOptions: { source: 's' }, formats: new Map(), delivery: 'sync' }

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

t.test('provision/queues.example.json places every queue with the seed platform routes', async t => {
  const config = testConfig(t)
  const ajv = createAjv()
  const seed = {
    destinations: {
      ocelot: { broker: 'rabbitmq', exchange: 'ocelot.events', envelope: 'ocelot', source: 'communications', module: 'cc-lite' },
      'draft-genie': { broker: 'rabbitmq', exchange: 'draft-genie.events', envelope: 'draft-genie' },
      surveys: { broker: 'sqs', queueUrl: 'https://sqs.eu-central-1.amazonaws.com/000000000000/survey-events.fifo' },
      'batch-bus': { broker: 'eventbridge', busName: 'batch-events', source: 'com.example.batch' },
      store: { broker: 'local' }
    },
    routes: [
      { types: ['call.*', 'campaign.*', 'sentiment.*'], to: ['ocelot', 'store'] },
      { types: ['speaker.*', 'draft.*', 'rag.*', 'evaluation.*'], to: ['draft-genie'] },
      { types: ['survey.*'], to: ['surveys'] },
      { types: ['batch.*'], to: ['batch-bus'] },
      { types: ['*'], to: ['store'] }
    ]
  }
  const routing = resolveRouting(readRoutesFile(writeJson(t, 'routes.json', seed), ajv, {}), loadCatalog(config, ajv).list(), config, 'seed')
  const placed = queuesByDestination(readQueuesFile('provision/queues.example.json'), routing.destinations)
  t.same([...placed].map(([d, qs]) => [d, qs.map(q => q.name)]), [
    ['ocelot', ['focus_lite_calls']],
    ['draft-genie', ['speaker.events', 'draft.events', 'rag.events', 'evaluation.events']]
  ])
})

t.test('a queues file that is not valid is an error naming the field', async t => {
  t.match(failure(() => readQueuesFile('test/cli/missing.json')), /--queues: cannot read test\/cli\/missing.json/)
  t.match(failure(() => readQueuesFile('package.json')), /--queues: package.json is not valid: .*is not an allowed property/)
})
