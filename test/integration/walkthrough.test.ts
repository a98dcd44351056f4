import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { dirname } from 'node:path'
import amqplib from 'amqplib'
import t from 'tap'
import { uncoveredEnv } from '../helper.js'
import { fencedBlocks, readDoc, section } from '../markdown.js'
import { pythonSkip } from './consumer-process.js'
import { AMQP_URL, rabbitSkip, takeRabbitMqTurn } from './rabbit-helper.js'
import { unmet } from '../services.js'

// The README's seed platform walk-through, run as written: its shell blocks, in one bash, from the
// repository's directory. It ends with the seeds' consumers printing what they read; this test
// checks each printed the event sent to it. It uses what the walk-through names: ports 3000 and
// 4566, the exchanges ocelot.events and draft-genie.events and the consumers' queues (deleted
// before and after), RabbitMQ as guest.

const root = new URL('../../', import.meta.url).pathname
const rabbit = await rabbitSkip()
const python = await pythonSkip()

async function portFree (port: number): Promise<boolean> {
  const server = createServer()
  server.listen(port, '127.0.0.1')
  try {
    await once(server, 'listening')
    server.close()
    return true
  } catch {
    return false
  }
}

const busy = (await Promise.all([3000, 4566].map(async p => (await portFree(p)) ? undefined : p))).filter(p => p !== undefined)
const portsSkip = busy.length === 0 ? false : unmet(`the walk-through needs ports 3000 and 4566; in use: ${busy.join(', ')}`)
const skip = rabbit !== false ? rabbit : python !== false ? python : portsSkip
if (skip === false) await takeRabbitMqTurn(t)

const QUEUES = [
  'focus_lite_calls', 'notification_sentiment', 'speaker.events', 'draft.events', 'rag.events', 'evaluation.events',
  'speaker.events.typescript', 'ocelot.events.dead', 'draft-genie.events.dead'
]
const EXCHANGES = ['ocelot.events', 'draft-genie.events', 'ocelot.events.dlx', 'draft-genie.events.dlx']

/** What the walk-through declares, gone: a run starts as a new machine does, and leaves nothing. */
async function clean (): Promise<void> {
  const conn = await amqplib.connect(AMQP_URL)
  const ch = await conn.createChannel()
  ch.on('error', () => {})
  for (const q of QUEUES) await ch.deleteQueue(q)
  for (const x of EXCHANGES) await ch.deleteExchange(x)
  await conn.close()
}

t.test(
  'the README\'s seed platform walk-through runs as written and ends with every seed\'s consumers reading their events',
  { skip, timeout: 240_000 },
  async t => {
    const text = section(readDoc('README.md'), '## The seed platform: one gateway for every team') ?? ''
    const blocks = fencedBlocks(text, 'sh')
    t.equal(blocks.length, 2, 'setting up, then the consumers and the events')
    await clean()
    t.teardown(clean)
    // The suite's own Node first (the runtime under test), then Debian's python3 (with Debian's
    // aio-pika, pika, boto3), as on the machine the README describes.
    const script = `set -e\n${blocks.join('\n')}\n`
    // The environment a user's shell has: not the test's AWS endpoints, nor tap's coverage (of the
    // built dist/, it would be mapped onto src/ beside the tests' own).
    const notTheUsers = /^(AWS_ENDPOINT_URL_SQS|AWS_ENDPOINT_URL_EVENTBRIDGE|ROUTES_FILE|NODE_OPTIONS|TAP.*|_TAPJS_.*)$/
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !notTheUsers.test(k)))
    const PATH = `${dirname(process.execPath)}:/usr/bin:${process.env.PATH ?? ''}`
    const shellEnv = uncoveredEnv({ ...env, PATH })
    const bash = spawn('bash', ['-c', script], { cwd: root, detached: true, env: shellEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    bash.stdout.on('data', (c: Buffer) => { out += c.toString() })
    bash.stderr.on('data', (c: Buffer) => { err += c.toString() })
    // What the walk-through leaves running (the emulator, the gateway, the consumers) goes with its process group.
    t.teardown(async () => {
      const signal = (name: NodeJS.Signals | 0) => {
        try {
          process.kill(-(bash.pid as number), name)
          return true
        } catch {
          return false // the group is gone
        }
      }
      signal('SIGTERM')
      // The gateway drains before it exits: wait for the ports to be free for the next run.
      for (let i = 0; i < 150 && signal(0); i++) await new Promise(resolve => setTimeout(resolve, 100))
      signal('SIGKILL')
    })
    const [code] = await once(bash, 'exit') as [number]
    t.equal(code, 0, `every command succeeds; it said: ${err.slice(-3000)}`)
    t.match(out, /verified: 5 destination\(s\) got the event from the gateway as sent/, 'npm run verify: every destination')

    // The consumers and curl share the terminal: a consumer's line may come between curl's answer
    // and its newline. Each consumer line is found by where it starts and where its braces close.
    const lines = [...out.matchAll(/\{"consumer": ?"/g)].map(m => JSON.parse(objectAt(out, m.index)) as Record<string, unknown>)
    const has = (l: Record<string, unknown>, match: Record<string, unknown>) =>
      Object.entries(match).every(([k, v]) => JSON.stringify(l[k]) === JSON.stringify(v))
    const printed = (consumer: string, match: Record<string, unknown>) =>
      t.ok(lines.some(l => l.consumer === consumer && has(l, match)), `${consumer} printed ${JSON.stringify(match)}`)
    const T = '7c9e6679-7425-40de-944b-e07fc1f90ae7'
    printed('focus-lite', { type: 'call.ended', organizationId: T, userId: 'agent-7' })
    printed('focus-lite', {
      task: { title: 'Call back customer from call call-1', priority: 'high', due_date: 'tomorrow', organizationId: T, userId: 'agent-7' }
    })
    printed('notification', { type: 'sentiment.analyzed', organizationId: T })
    t.ok(lines.some(l => l.consumer === 'notification' && typeof l.alert === 'object'), 'the Notification module alerts')
    const speaker = { speaker_id: 'spk-1', external_id: 'ext-1', name: 'Ann Lee', bucket: 'GOOD' }
    printed('draft-genie python speaker', {
      event_type: 'speaker.onboarded', aggregate_id: 'spk-1', aggregate_type: 'Speaker', payload: speaker
    })
    printed('draft-genie typescript speaker', {
      eventType: 'speaker.onboarded', aggregateId: 'spk-1', aggregateType: 'Speaker', payload: speaker
    })
    printed('survey-email-worker', {
      event_type: 'survey.completed',
      call_id: '5a7c9e1b-3d5f-4b7d-8f1a-2c4e6a8b0d2f',
      message_group_id: 'campaign-0f8d3c2e-5b7a-4c1d-9e2f-3a4b5c6d7e8f',
      answers: ['9', 'Friendly']
    })
    printed('verify-event-flow', {
      interaction_id: '9d2f1c7e-5b3a-4e8d-a6c4-0b1e2d3f4a5b', tenant_id: T, user_id: 'user-42', account_id: null, status: 'completed'
    })
    t.notMatch(err, /acked and dropped|deleted as malformed|not valid/, 'no consumer lost an event')
  }
)

/** The JSON object that starts at `start`: up to the brace that closes it, strings skipped. */
function objectAt (text: string, start: number): string {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (c === '"') {
      inString = true
    } else if (c === '{') {
      depth++
    } else if (c === '}' && --depth === 0) {
      return text.slice(start, i + 1)
    }
  }
  return text.slice(start)
}
