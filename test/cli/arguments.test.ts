import t from 'tap'
import { runTs } from '../helper.js'
import { writeJson } from '../integration/cli-helper.js'

// Mistakes in the routing or on the command line end with exit 1 and a message naming the
// problem, before anything is declared, published or consumed: the RabbitMQ URL below has
// nothing listening, so reaching for it would end differently (exit 2 or 3).
const routes = (t: Parameters<typeof writeJson>[0]) => writeJson(t, 'routes.json', {
  destinations: {
    ocelot: { broker: 'rabbitmq', url: 'amqp://127.0.0.1:1', exchange: 'ocelot.events', envelope: 'ocelot' },
    'draft-genie': { broker: 'rabbitmq', url: 'amqp://127.0.0.1:1', exchange: 'draft-genie.events', envelope: 'draft-genie' },
    surveys: { broker: 'sqs', queueUrl: 'http://127.0.0.1:1/000000000000/surveys' },
    'batch-bus': { broker: 'eventbridge', busName: 'batch-events' },
    store: { broker: 'local' }
  },
  routes: [
    { types: ['call.*'], to: ['ocelot'] },
    { types: ['speaker.*'], to: ['draft-genie'] },
    { types: ['survey.*'], to: ['surveys'] },
    { types: ['batch.*'], to: ['batch-bus'] },
    { types: ['*'], to: ['store'] }
  ]
})

const run = async (script: string, args: string[], env: Record<string, string | undefined>) => {
  const cli = runTs(`src/cli/${script}.ts`, args, { SQS_QUEUE_URL: undefined, ...env })
  return { code: await cli.exit, stderr: cli.out.stderr }
}

t.test('tail needs one RabbitMQ or Kafka destination: the one named, or the only RabbitMQ one', async t => {
  const ROUTES_FILE = routes(t)
  const several = await run('tail', [], { ROUTES_FILE })
  t.equal(several.code, 1)
  t.match(several.stderr, /several RabbitMQ destinations \(ocelot, draft-genie\); name one with --destination/)
  const sqs = await run('tail', ['--destination', 'surveys'], { ROUTES_FILE })
  t.equal(sqs.code, 1)
  t.match(sqs.stderr, /destination 'surveys' is sqs; tail reads RabbitMQ and Kafka destinations/)
  const none = await run('tail', [], { BROKER: 'local', ROUTES_FILE: undefined })
  t.equal(none.code, 1)
  t.match(none.stderr, /the routing has no RabbitMQ destination \(it has: local \(local\)\)/)
})

t.test('provision: an unknown destination, or a queue that could go to either exchange, changes nothing', async t => {
  const ROUTES_FILE = routes(t)
  const unknown = await run('provision', ['--destination', 'ocelot', '--destination', 'nope'], { ROUTES_FILE })
  t.equal(unknown.code, 1)
  t.match(
    unknown.stderr,
    /--destination: no destination named 'nope' in the routing \(it has: ocelot, draft-genie, surveys, batch-bus, store/
  )
  const queues = writeJson(t, 'queues.json', { queues: [{ name: 'calls', bindings: ['comms.#'] }] })
  const unplaced = await run('provision', ['--queues', queues, '--destination', 'store'], { ROUTES_FILE })
  t.equal(unplaced.code, 1)
  t.match(unplaced.stderr, /queue calls names no destination, and the routing has several RabbitMQ destinations/)
})

t.test('verify: a type not routed to the destination, EventBridge without the queue its rule feeds, an unknown option', async t => {
  const ROUTES_FILE = routes(t)
  const notRouted = await run('verify', ['--destination', 'surveys', '--type', 'call.ended'], { ROUTES_FILE })
  t.equal(notRouted.code, 1)
  t.match(notRouted.stderr, /--type: call.ended is not routed to surveys \(it goes to ocelot\)/)
  // Without SQS_QUEUE_URL, verify looks for the rule that feeds a queue; with no AWS to ask, it says so.
  const noQueue = await run('verify', ['--destination', 'batch-bus'], { ROUTES_FILE, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' })
  t.equal(noQueue.code, 3)
  t.match(noQueue.stderr, /batch-bus +eventbridge +FAILED \(3\): cannot find the rules of bus \S+ \(to find the queue its events reach\)/)
  const option = await run('verify', ['--destinaton', 'x'], { ROUTES_FILE })
  t.equal(option.code, 1)
  t.match(option.stderr, /Unknown option '--destinaton'[\s\S]*usage: npm run verify/)
})
