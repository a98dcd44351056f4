import './aws-env.js'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { EventBridgeClient, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge'
import t, { type Test } from 'tap'
import { AwsEmulator } from '../../scripts/aws-emulator/index.js'
import { buildApp } from '../../src/app.js'
import { BUILTIN_ENTRIES } from '../../src/catalog/index.js'
import { LogCapture, TENANT, dataDir, exampleOf, post, testConfig } from '../helper.js'
import { ConsumerProcess, PYTHON, pythonSkip, type Line } from './consumer-process.js'
import { AMQP_URL, cleanupExchange, rabbitSkip, takeRabbitMqTurn, uniqueName } from './rabbit-helper.js'

// The acceptance test of the seed platform: one gateway, from examples/routes.seed-platform.json,
// in front of the seeds' own consumers, written as the seeds write them, in their own languages
// (examples/consumers/): Draft Genie's Python EventConsumer (aio-pika) and TypeScript one (amqplib)
// on the same exchange, Ocelot's Focus-Lite (aio-pika) and Notification module (pika), seed 000's
// survey email worker and seed 001's event flow check (boto3, Debian's 1.26, through the query
// protocol). Every field each consumer reads is checked, value and type, and every event arrives
// exactly once. RabbitMQ is the real one; SQS and EventBridge are the repository's emulator.

const rabbit = await rabbitSkip()
const python = await pythonSkip()
const skip = rabbit !== false ? rabbit : python
if (skip === false) await takeRabbitMqTurn(t)

const root = new URL('../../', import.meta.url).pathname
const consumerPath = (file: string) => join(root, 'examples/consumers', file)
const SECOND_TENANT = '3b5e7c9a-1d2f-4a6b-8c0d-2e4f6a8b0c1d'

async function platform (t: Test) {
  const aws = await AwsEmulator.start({ port: 0, region: 'eu-central-1' })
  t.teardown(() => aws.stop())
  const clientConfig = { region: 'eu-central-1', endpoint: aws.endpoint }
  const surveys = await aws.createQueue(`${uniqueName('survey-events').replaceAll('.', '-')}.fifo`)
  const capture = await aws.createQueue(uniqueName('capture-transcripts').replaceAll('.', '-'))
  // Seed 001's provisioning: capture-transcripts-rule on the default bus, its queue as the target.
  const events = new EventBridgeClient(clientConfig)
  t.teardown(() => events.destroy())
  const pattern = { source: ['com.yourapp.transcription'], 'detail-type': ['BatchProcessingCompleted'] }
  await events.send(new PutRuleCommand({ Name: 'capture-transcripts-rule', EventPattern: JSON.stringify(pattern) }))
  const captureArn = `arn:aws:sqs:eu-central-1:000000000000:${capture.split('/').at(-1) as string}`
  await events.send(new PutTargetsCommand({ Rule: 'capture-transcripts-rule', Targets: [{ Id: 'capture', Arn: captureArn }] }))

  // The example routes file as shipped, with exchange names of this test's own.
  const file = JSON.parse(readFileSync(join(root, 'examples/routes.seed-platform.json'), 'utf8'))
  const ocelot = uniqueName('ocelot.events')
  const draftGenie = uniqueName('draft-genie.events')
  file.destinations.ocelot.exchange = ocelot
  file.destinations['draft-genie'].exchange = draftGenie
  cleanupExchange(t, ocelot)
  cleanupExchange(t, draftGenie)
  const path = join(dataDir(t), 'routes.json')
  writeFileSync(path, JSON.stringify(file))
  const env = {
    AWS_ENDPOINT_URL: aws.endpoint,
    AWS_REGION: 'eu-central-1',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    SURVEYS_QUEUE_URL: surveys
  }
  const saved = { AWS_ENDPOINT_URL: process.env.AWS_ENDPOINT_URL, AWS_REGION: process.env.AWS_REGION }
  Object.assign(process.env, { AWS_ENDPOINT_URL: aws.endpoint, AWS_REGION: 'eu-central-1' })
  t.teardown(() => { for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v })
  const app = await buildApp(testConfig(t, { ROUTES_FILE: path, PUBLISH_TIMEOUT_MS: '5000' }), {
    env: { ...process.env, ...env }, logStream: new LogCapture()
  })
  t.teardown(() => app.close())
  await app.ready()
  return { app, env, ocelot, draftGenie, surveys, capture }
}

t.test('every seed team\'s consumers read what they read from their own publishers, from one gateway', { skip }, async t => {
  const p = await platform(t)
  const rabbitEnv = { RABBITMQ_URL: `${AMQP_URL}/` }
  const queue = (name: string) => uniqueName(name)
  const dgQueues = (tag: string) => ({
    SPEAKER_QUEUE: queue(`speaker.events.${tag}`),
    DRAFT_QUEUE: queue(`draft.events.${tag}`),
    RAG_QUEUE: queue(`rag.events.${tag}`),
    EVALUATION_QUEUE: queue(`evaluation.events.${tag}`)
  })
  const families = ['speaker', 'draft', 'rag', 'evaluation']
  const consumers = {
    dgPython: new ConsumerProcess(
      t, 'Draft Genie Python EventConsumer', PYTHON, [consumerPath('draft_genie_consumer.py'), ...families],
      { ...rabbitEnv, RABBITMQ_EXCHANGE: p.draftGenie, ...dgQueues('py') }
    ),
    dgTypeScript: new ConsumerProcess(
      t, 'Draft Genie TypeScript EventConsumer', process.execPath,
      ['--import', 'tsx', consumerPath('draft-genie-consumer.ts'), ...families],
      { ...rabbitEnv, RABBITMQ_EXCHANGE: p.draftGenie, ...dgQueues('ts') }
    ),
    focusLite: new ConsumerProcess(
      t, 'Ocelot Focus-Lite', PYTHON, [consumerPath('focus_lite_consumer.py')],
      { ...rabbitEnv, OCELOT_EXCHANGE: p.ocelot, FOCUS_LITE_QUEUE: queue('focus_lite_calls') }
    ),
    notification: new ConsumerProcess(
      t, 'Ocelot Notification (pika)', PYTHON, [consumerPath('ocelot_notification_consumer.py')],
      { ...rabbitEnv, OCELOT_EXCHANGE: p.ocelot, NOTIFICATION_QUEUE: queue('notification_sentiment') }
    ),
    surveyWorker: new ConsumerProcess(t, 'survey email worker', PYTHON, [consumerPath('survey_email_worker.py')], p.env),
    eventFlow: new ConsumerProcess(
      t, 'seed 001 event flow check', PYTHON, [consumerPath('verify_event_flow.py')], { ...p.env, CAPTURE_QUEUE_URL: p.capture }
    )
  }
  t.teardown(async () => {
    // Their queues are durable (as the seeds declare them): delete them after.
    const amqplib = await import('amqplib')
    const conn = await amqplib.default.connect(AMQP_URL)
    const ch = await conn.createChannel()
    for (const c of [consumers.dgPython, consumers.dgTypeScript, consumers.focusLite, consumers.notification]) {
      for (const l of c.lines) if (typeof l.ready === 'string') await ch.deleteQueue(l.ready).catch(() => undefined)
    }
    await conn.close()
  })
  for (const c of [consumers.focusLite, consumers.notification, consumers.surveyWorker, consumers.eventFlow]) {
    await c.waitFor(l => 'ready' in l, 'ready line')
  }
  for (const c of [consumers.dgPython, consumers.dgTypeScript]) {
    for (const family of families) await c.waitFor(l => 'ready' in l && String(l.consumer).endsWith(family), `${family} ready line`)
  }

  // Every type each team's consumers handle, as its example, from two tenants, with and without
  // the optional context headers.
  type Sent = {
    type: string, id: string, tenant: string, user?: string, account?: string, correlationId: string, data: Record<string, unknown>
  }
  const sent: Sent[] = []
  const send = async (type: string, data: Record<string, unknown>, headers: { tenant: string, user?: string, account?: string }) => {
    const correlationId = `corr-${sent.length}`
    const res = await p.app.inject(post(type, data, {
      'x-tenant-id': headers.tenant,
      'x-correlation-id': correlationId,
      ...(headers.user === undefined ? {} : { 'x-user-id': headers.user }),
      ...(headers.account === undefined ? {} : { 'x-account-id': headers.account })
    }))
    t.equal(res.statusCode, 202, `${type} accepted`)
    const event = {
      type,
      id: res.json().id as string,
      tenant: headers.tenant,
      correlationId,
      data,
      ...(headers.user === undefined ? {} : { user: headers.user }),
      ...(headers.account === undefined ? {} : { account: headers.account })
    }
    sent.push(event)
    return event
  }
  const draftTypes = BUILTIN_ENTRIES.filter(e => families.some(f => e.type.startsWith(`${f}.`)))
  for (const e of draftTypes) await send(e.type, exampleOf(e.type), { tenant: TENANT, user: 'user-9' })
  const callback = await send('call.ended', exampleOf('call.ended'), { tenant: TENANT, user: 'agent-7' })
  const completed = await send('call.ended', { ...exampleOf('call.ended'), outcome: 'completed', transcript: null }, {
    tenant: SECOND_TENANT
  })
  const negative = await send('sentiment.analyzed', exampleOf('sentiment.analyzed'), { tenant: TENANT, user: 'agent-7' })
  const surveys = []
  for (const type of ['survey.completed', 'survey.refused', 'survey.not_reached']) {
    surveys.push(await send(type, exampleOf(type), { tenant: TENANT }))
  }
  // The same outcome for the same call again: seed 000's deduplication id drops it.
  const repeat = await send('survey.completed', exampleOf('survey.completed'), { tenant: TENANT })
  const batchAnonymous = await send('batch.processing.completed', exampleOf('batch.processing.completed'), { tenant: TENANT })
  const batchOfUser = await send(
    'batch.processing.completed',
    { ...exampleOf('batch.processing.completed'), interaction_id: '9d2f1c7e-5b3a-4e8d-a6c4-0b1e2d3f4a5b' },
    { tenant: SECOND_TENANT, user: 'user-42', account: 'acct-7' }
  )

  // Draft Genie, Python: dispatches on event_type, reads the snake_case fields.
  for (const e of draftTypes) {
    const entry = e
    const s = sent.find(x => x.type === entry.type) as Sent
    const aggregate = entry.aggregate as { type: string, idField: string }
    const py = await consumers.dgPython.waitFor(l => l.event_id === s.id, `${s.type}`)
    t.same(omitTime(py, 'timestamp'), {
      consumer: `draft-genie python ${s.type.split('.')[0] as string}`,
      event_id: s.id,
      event_type: s.type,
      aggregate_id: s.data[aggregate.idField],
      aggregate_type: aggregate.type,
      correlation_id: s.correlationId,
      version: 1,
      payload: s.data
    }, `Python reads ${s.type}`)
    t.ok(isTime(py.timestamp), 'timestamp is a time')
    const ts = await consumers.dgTypeScript.waitFor(l => l.eventId === s.id, `${s.type}`)
    t.same(omitTime(ts, 'timestamp'), {
      consumer: `draft-genie typescript ${s.type.split('.')[0] as string}`,
      eventId: s.id,
      eventType: s.type,
      aggregateId: s.data[aggregate.idField],
      aggregateType: aggregate.type,
      correlationId: s.correlationId,
      version: 1,
      payload: s.data
    }, `TypeScript reads ${s.type}`)
  }

  // Ocelot: Focus-Lite makes its follow-up task on callback_requested only; Notification alerts below -0.5.
  const read = await consumers.focusLite.waitFor(l => l.id === callback.id, 'call.ended (callback)')
  const metadata = { version: '1.0.0', module: 'cc-lite' }
  t.same(read, {
    consumer: 'focus-lite', id: callback.id, type: 'call.ended', organizationId: TENANT, userId: 'agent-7', data: callback.data, metadata
  })
  t.same(await consumers.focusLite.waitFor(l => l.id === completed.id, 'call.ended (completed)'), {
    consumer: 'focus-lite',
    id: completed.id,
    type: 'call.ended',
    organizationId: SECOND_TENANT,
    userId: null,
    data: completed.data,
    metadata
  })
  t.same(
    consumers.focusLite.lines.filter(l => 'task' in l).map(l => l.task),
    [{
      title: 'Call back customer from call call-7f3a9c', priority: 'high', due_date: 'tomorrow', organizationId: TENANT, userId: 'agent-7'
    }],
    'one task, for the callback'
  )
  await consumers.notification.waitFor(l => l.id === negative.id, 'sentiment.analyzed')
  t.same((await consumers.notification.waitFor(l => 'alert' in l, 'alert')).alert, {
    type: 'negative_sentiment',
    priority: 'high',
    call_id: negative.data.call_id,
    sentiment_score: -0.62,
    organizationId: TENANT,
    message: 'Negative sentiment detected on active call - consider intervention'
  })

  // Seed 000: the flat body, the group id and the attributes; the repeat of the same call deduplicated.
  for (const s of surveys) {
    const line = await consumers.surveyWorker.waitFor(l => l.event_id === s.id, s.type)
    t.same(omitTime(line, 'timestamp'), {
      consumer: 'survey-email-worker',
      event_id: s.id,
      event_type: s.type,
      campaign_id: s.data.campaign_id,
      contact_id: s.data.contact_id,
      call_id: s.data.call_id,
      answers: s.data.answers ?? null,
      refusal_reason: s.data.refusal_reason ?? null,
      total_attempts: s.data.total_attempts ?? null,
      last_outcome: s.data.last_outcome ?? null,
      message_group_id: `campaign-${String(s.data.campaign_id)}`,
      attributes: {
        event_type: s.type,
        campaign_id: s.data.campaign_id,
        contact_id: s.data.contact_id,
        call_id: s.data.call_id,
        'event-type': s.type,
        'tenant-id': TENANT,
        'correlation-id': s.correlationId
      },
      email: s.type === 'survey.completed'
        ? { template: 'thank_you', answers: 3 }
        : s.type === 'survey.refused'
          ? { template: 'sorry_to_bother', reason: 'not_interested' }
          : { template: 'missed_you', attempts: 3, last_outcome: 'no_answer' }
    }, `the email worker reads ${s.type}`)
    t.ok(isTime(line.timestamp))
  }

  // Seed 001: the rule matched, and the detail is the pipeline's structure.
  for (const [s, user, account] of [[batchAnonymous, 'system', null], [batchOfUser, 'user-42', 'acct-7']] as const) {
    const line = await consumers.eventFlow.waitFor(l => l.interaction_id === s.data.interaction_id, 'batch.processing.completed')
    t.same(omitTime(line, 'timestamp'), {
      consumer: 'verify-event-flow',
      source: 'com.yourapp.transcription',
      detail_type: 'BatchProcessingCompleted',
      version: '1.0',
      interaction_id: s.data.interaction_id,
      tenant_id: s.tenant,
      user_id: user,
      account_id: account,
      status: 'completed',
      cleaned_transcript_length: String(s.data.cleaned_transcript).length,
      raw_transcript_length: String(s.data.raw_transcript).length
    }, `the event flow check reads the detail (user ${user})`)
  }

  // Exactly once: a last event to each consumer, and by then nothing came twice.
  const last = await send('speaker.updated', exampleOf('speaker.updated'), { tenant: TENANT })
  const lastCall = await send('call.ended', exampleOf('call.ended'), { tenant: SECOND_TENANT })
  const lastSentiment = await send('sentiment.analyzed', { ...exampleOf('sentiment.analyzed'), score: 0.4 }, { tenant: TENANT })
  const lastSurvey = await send('survey.refused', {
    ...exampleOf('survey.refused'), call_id: '6e1d2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b'
  }, { tenant: TENANT })
  await consumers.dgPython.waitFor(l => l.event_id === last.id, 'the last event')
  await consumers.dgTypeScript.waitFor(l => l.eventId === last.id, 'the last event')
  await consumers.focusLite.waitFor(l => l.id === lastCall.id, 'the last event')
  await consumers.notification.waitFor(l => l.id === lastSentiment.id, 'the last event')
  await consumers.surveyWorker.waitFor(l => l.event_id === lastSurvey.id, 'the last event')
  const count = (c: ConsumerProcess, key: string, id: string) => c.lines.filter(l => l[key] === id).length
  for (const s of sent.filter(x => draftTypes.some(e => e.type === x.type))) {
    t.equal(count(consumers.dgPython, 'event_id', s.id), 1, `Python: ${s.type} once`)
    t.equal(count(consumers.dgTypeScript, 'eventId', s.id), 1, `TypeScript: ${s.type} once`)
  }
  for (const s of [callback, completed, lastCall]) t.equal(count(consumers.focusLite, 'id', s.id), 1, 'Focus-Lite: once')
  for (const s of [negative, lastSentiment]) t.equal(count(consumers.notification, 'id', s.id), 1, 'Notification: once')
  for (const s of [...surveys, lastSurvey]) t.equal(count(consumers.surveyWorker, 'event_id', s.id), 1, `email worker: ${s.type} once`)
  t.equal(
    count(consumers.surveyWorker, 'event_id', repeat.id),
    0,
    'the same survey outcome for the same call is delivered once (seed 000\'s deduplication id)'
  )
  t.equal(consumers.eventFlow.lines.filter(l => 'interaction_id' in l).length, 2, 'the event flow check: each batch event once')
  for (const c of Object.values(consumers)) t.equal(c.stderr.trim(), '', `${c.name}: nothing dropped, nothing malformed`)
})

function omitTime (line: Line, key: string): Line {
  const { [key]: _time, ...rest } = line
  return rest
}

function isTime (value: unknown): boolean {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value))
}
