import './aws-env.js'
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs'
import t from 'tap'
import { AwsEmulator } from '../../scripts/aws-emulator/index.js'
import { buildApp } from '../../src/app.js'
import { runTs, testConfig } from '../helper.js'
import { AWS_CREDENTIALS, baseUrl } from './cli-helper.js'
import { rabbitSkip, takeRabbitMqTurn } from './rabbit-helper.js'

// The seed platform's AWS half as the README's walk-through sets it up: `npm run provision` with
// the example routes and queues files creates seed 000's FIFO queue and seed 001's rule on the
// default bus to its queue; `npm run verify` then checks both destinations with no more variables
// than the gateway has (it finds the rule's queue by itself). Against the repository's AWS
// emulator, which delivers what the rule matches into the queue, as EventBridge does.

const skip = await rabbitSkip()
if (skip === false) await takeRabbitMqTurn(t)
const ROUTES_FILE = 'examples/routes.seed-platform.json'

t.test('provision sets up seed 001\'s rule to its queue, and verify finds it there by itself', { skip }, async t => {
  const aws = await AwsEmulator.start({ port: 0, region: 'eu-central-1' })
  t.teardown(() => aws.stop())
  const env = {
    ...AWS_CREDENTIALS,
    AWS_REGION: 'eu-central-1',
    AWS_ENDPOINT_URL: aws.endpoint,
    ROUTES_FILE,
    SURVEYS_QUEUE_URL: aws.queueUrl('survey-events.fifo')
  }
  const cli = (script: string, args: string[]) => runTs(`src/cli/${script}.ts`, args, env)

  const provisionArgs = ['--destination', 'surveys', '--destination', 'transcripts', '--queues', 'provision/queues.example.json']
  const provision = cli('provision', provisionArgs)
  t.equal(await provision.exit, 0, provision.out.stderr)
  t.match(provision.out.stdout, new RegExp(
    /Destination surveys: SQS queue [^\n]*/.source +
    /\n {2}queue survey-events-dlq\.fifo \(FIFO\)\s+created/.source +
    /\n {2}queue survey-events\.fifo \(FIFO\)\s+created/.source
  ))
  t.match(provision.out.stdout, new RegExp(
    /Destination transcripts: EventBridge bus default[^\n]*/.source +
    /\n {2}queue capture-transcripts-dlq\s+created/.source +
    /\n {2}queue capture-transcripts\s+created/.source +
    /\n {2}redrive[^\n]*created/.source +
    /\n {2}rule capture-transcripts-rule on default matching source com\.yourapp\.transcription, /.source +
    /detail-type BatchProcessingCompleted\s+created/.source +
    /\n {2}target capture-transcripts of rule capture-transcripts-rule\s+created/.source +
    /\n {2}queue policy: the rule may send to capture-transcripts\s+created/.source
  ))
  const again = cli('provision', provisionArgs)
  t.equal(await again.exit, 0, again.out.stderr)
  t.match(again.out.stdout, /Nothing to change: all 9 already in place/, 'a second run changes nothing')

  // The gateway, as `npm start` would run it with these variables.
  const saved = { ...process.env }
  Object.assign(process.env, env)
  t.teardown(() => { process.env = saved })
  const app = await buildApp(testConfig(t, { ROUTES_FILE }), { env: { ...process.env, ...env } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const verify = cli('verify', [
    '--gateway', baseUrl(app.server.address()), '--destination', 'surveys', '--destination', 'transcripts', '--timeout', '10'
  ])
  t.equal(await verify.exit, 0, verify.out.stderr)
  t.match(verify.out.stdout, new RegExp(
    /surveys +sqs +verified: survey\.completed \S+ in queue \S+survey-events\.fifo; /.source +
    /template envelope: event_id, event_type, timestamp, campaign_id, contact_id, call_id, answers, confidence_scores, /.source +
    /tenant \(SQS attribute tenant-id\) as sent; deleted/.source
  ))
  t.match(verify.out.stdout, new RegExp(
    /transcripts +eventbridge +verified: batch\.processing\.completed \S+ in queue \S+\/capture-transcripts through bus default; /.source +
    /template envelope: version, interaction_id, tenant_id, user_id, account_id, timestamp, status, data as sent; deleted/.source
  ))
  const sqs = new SQSClient({ region: 'eu-central-1', endpoint: aws.endpoint, useQueueUrlAsEndpoint: false } as never)
  t.teardown(() => sqs.destroy())
  for (const name of ['survey-events.fifo', 'capture-transcripts']) {
    const left = await sqs.send(new ReceiveMessageCommand({ QueueUrl: aws.queueUrl(name), WaitTimeSeconds: 0 }))
    t.same(left.Messages ?? [], [], `${name}: the test message was deleted`)
  }

  // Without the rule, verify says what is missing and how to set it up.
  aws.eventBridge.rules.clear()
  const lost = cli('verify', ['--gateway', baseUrl(app.server.address()), '--destination', 'transcripts', '--timeout', '5'])
  t.equal(await lost.exit, 1)
  t.match(lost.out.stderr, new RegExp(
    /transcripts +eventbridge +FAILED \(1\): no rule on bus default sends source com\.yourapp\.transcription, /.source +
    /detail-type BatchProcessingCompleted to an SQS queue: name one in the queues file's rules/.source
  ))
})
