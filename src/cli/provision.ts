// npm run provision [-- --queues provision/queues.json]
// Declares the broker topology the gateway and its consumers rely on. Idempotent: a second run
// changes nothing and says so. Exit codes: 0 done, 1 bad config or queues file, 2 broker not
// reachable, 3 the broker refused a declaration.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import amqplib, { type ChannelModel } from 'amqplib'
import { Type, type Static } from 'typebox'
import { alternateExchange, type Config } from '../config.js'
import { createAjv, toFieldErrors } from '../validation.js'
import { cliConfig, safeUrl } from './common.js'
import { provisionAws, queueNameFor } from './provision-aws.js'

export const QueuesFileSchema = Type.Object({
  queues: Type.Array(Type.Object({
    name: Type.String({ minLength: 1, maxLength: 255 }),
    bindings: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { minItems: 1 })
  }, { additionalProperties: false }))
}, { additionalProperties: false })
type QueuesFile = Static<typeof QueuesFileSchema>

const NOT_FOUND = 404

function readQueues (path: string | undefined): QueuesFile {
  if (path === undefined) return { queues: [] }
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    console.error(`--queues: cannot read ${path}: ${(err as Error).message}`)
    process.exit(1)
  }
  const check = createAjv().compile(QueuesFileSchema)
  if (!check(json)) {
    console.error(`--queues: ${path} is not valid: ${toFieldErrors(check.errors).map(e => `${e.path} ${e.message}`).join('; ')}`)
    process.exit(1)
  }
  return json as QueuesFile
}

class Steps {
  created = 0
  existing = 0
  say (what: string, created: boolean): void {
    if (created) this.created++
    else this.existing++
    console.log(`  ${what.padEnd(64)} ${created ? 'created' : 'exists'}`)
  }
}

async function exists (conn: ChannelModel, kind: 'exchange' | 'queue', name: string): Promise<boolean> {
  // A passive check that fails closes its channel, so each check gets its own.
  const ch = await conn.createChannel()
  ch.on('error', () => {})
  try {
    await (kind === 'exchange' ? ch.checkExchange(name) : ch.checkQueue(name))
    await ch.close()
    return true
  } catch (err) {
    if ((err as { code?: number }).code === NOT_FOUND) return false
    throw err
  }
}

export async function provisionRabbitMq (config: Config, queues: QueuesFile): Promise<Steps> {
  const steps = new Steps()
  const exchange = config.AMQP_EXCHANGE
  const ae = alternateExchange(config)
  const dlx = `${exchange}.dlx`
  const dead = `${exchange}.dead`
  console.log(`RabbitMQ ${safeUrl(config.AMQP_URL)}`)
  let conn: ChannelModel
  try {
    conn = await amqplib.connect(config.AMQP_URL, { timeout: 5000 })
  } catch (err) {
    console.error(`cannot connect: ${(err as Error).message}`)
    process.exit(2)
  }
  try {
    const ch = await conn.createChannel()
    if (ae !== undefined) {
      const had = await exists(conn, 'exchange', ae)
      await ch.assertExchange(ae, 'fanout', { durable: true })
      steps.say(`exchange ${ae} (fanout, durable): keeps unroutable events`, !had)
      const hadQ = await exists(conn, 'queue', ae)
      await ch.assertQueue(ae, { durable: true })
      await ch.bindQueue(ae, ae, '')
      steps.say(`queue ${ae} (durable) bound to it`, !hadQ)
    }
    const had = await exists(conn, 'exchange', exchange)
    await ch.assertExchange(exchange, 'topic', { durable: true, ...(ae === undefined ? {} : { arguments: { 'alternate-exchange': ae } }) })
    steps.say(`exchange ${exchange} (topic, durable${ae === undefined ? '' : `, alternate-exchange ${ae}`})`, !had)
    const hadDlx = await exists(conn, 'exchange', dlx)
    await ch.assertExchange(dlx, 'topic', { durable: true })
    steps.say(`exchange ${dlx} (topic, durable): dead letters`, !hadDlx)
    const hadDead = await exists(conn, 'queue', dead)
    await ch.assertQueue(dead, { durable: true })
    await ch.bindQueue(dead, dlx, '#')
    steps.say(`queue ${dead} (durable) bound to ${dlx} with #`, !hadDead)
    for (const q of queues.queues) {
      const hadQ = await exists(conn, 'queue', q.name)
      await ch.assertQueue(q.name, { durable: true, deadLetterExchange: dlx })
      for (const binding of q.bindings) await ch.bindQueue(q.name, exchange, binding)
      steps.say(`queue ${q.name} (durable, dead letters to ${dlx}) bound with ${q.bindings.join(', ')}`, !hadQ)
    }
    await ch.close()
  } catch (err) {
    console.error(`the broker refused a declaration: ${(err as Error).message}`)
    await conn.close().catch(() => undefined)
    process.exit(3)
  }
  await conn.close()
  return steps
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { queues: { type: 'string' }, fifo: { type: 'boolean', default: false } } })
  const config = await cliConfig()
  let steps: Steps
  if (config.BROKER === 'rabbitmq') {
    steps = await provisionRabbitMq(config, readQueues(values.queues))
  } else if (config.BROKER === 'sqs' || config.BROKER === 'eventbridge') {
    steps = new Steps()
    const queue = queueNameFor(config, values.fifo)
    console.log(`AWS${process.env.AWS_REGION ? ` ${process.env.AWS_REGION}` : ''}: queue ${queue}${config.BROKER === 'eventbridge' ? `, bus ${config.EVENTBRIDGE_BUS_NAME}` : ''}`)
    try {
      await provisionAws(config, { queue, eventbridge: config.BROKER === 'eventbridge' }, step => steps.say(step.what, step.created))
    } catch (err) {
      const e = err as { name?: string, message?: string, $metadata?: unknown }
      console.error(`AWS refused or could not be reached: ${e.name ?? 'Error'}: ${e.message ?? ''}`)
      process.exit(e.$metadata === undefined || /ECONNREFUSED|ENOTFOUND|Credential/i.test(`${e.name} ${e.message}`) ? 2 : 3)
    }
  } else {
    console.log('provision: BROKER=local needs nothing provisioned')
    return
  }
  console.log(steps.created === 0 ? `Nothing to change: all ${steps.existing} already in place.` : `Done: ${steps.created} created, ${steps.existing} already in place.`)
}

await main()
