// npm run verify [-- --destination NAME]... [--type TYPE] [--gateway http://127.0.0.1:3000] [--timeout 30]
//   [--tenant ID]
// End-to-end check per destination: publish a test event through the running gateway, find it
// where the destination puts it (SQS queue; behind an EventBridge rule, SQS_QUEUE_URL or else the
// queue of the rule on the bus that matches the event; a private queue on the RabbitMQ exchange;
// the local store read back through the gateway; a Kafka topic from its end before the publish),
// check its envelope in the destination's wire format, delete it (Kafka keeps it). One line per destination. Exit codes (of the
// first destination that failed): 0 verified, 1 bad config, 2 the gateway did not accept the
// event, 3 not received in time, 4 the envelope is wrong, 5 the test message could not be deleted.
import { randomUUID } from 'node:crypto'
import { firstExample } from '../catalog/index.js'
import { createEvent, type GatewayEvent } from '../envelopes/event.js'
import { messageOf } from '../errors.js'
import { HEADERS } from '../http/context/headers.js'
import type { WireFormat } from '../envelopes/index.js'
import type { DestinationConfig } from '../routing/index.js'
import { kafkaSettings } from '../config/index.js'
import { CliConnections } from './amqp.js'
import { cliArgs, exitWith, jsonObject } from './common.js'
import { cliSetup, selectDestinations, typesRoutedTo } from './routing.js'
import { CliFailure } from './failure.js'
import { checkEnvelope } from './verify-check.js'
import type { Watcher } from './verify-types.js'
import { watch } from './verify-watch.js'

const values = cliArgs('npm run verify -- [--destination NAME]... [--type TYPE] [--gateway URL] [--timeout S] [--tenant ID]', {
  destination: { type: 'string', multiple: true },
  type: { type: 'string' },
  gateway: { type: 'string' },
  timeout: { type: 'string', default: '30' },
  tenant: { type: 'string' }
})
const seconds = Number(values.timeout)
if (!(seconds > 0)) exitWith(1, '--timeout takes a number of seconds')
const setup = await cliSetup()
const { config, catalog, routing } = setup

let selected = selectDestinations(routing, values.destination)
if (values.type !== undefined) {
  const routedTo = routing.routes.get(values.type) ?? exitWith(1, `--type: no event type '${values.type}' in the catalog`)
  if (values.destination === undefined) selected = selected.filter(d => routedTo.includes(d.name))
  for (const d of selected) {
    if (!routedTo.includes(d.name)) exitWith(1, `--type: ${values.type} is not routed to ${d.name} (it goes to ${routedTo.join(', ')})`)
  }
}

// One event per type: destinations that get the same type are checked with the same event.
const byType = new Map<string, DestinationConfig[]>()
for (const d of selected) {
  // Every destination has a type routed to it: the routing leaves out the ones no route uses.
  const type = values.type ?? typesRoutedTo(setup, d.name)[0] as string
  byType.set(type, [...(byType.get(type) ?? []), d])
}

const gateway = (values.gateway ?? `http://127.0.0.1:${config.PORT}`).replace(/\/$/, '')
const tenant = values.tenant ?? config.MOCK_TENANT_ID ?? randomUUID()
const connections = new CliConnections()
const kafka = kafkaSettings(config).security
const width = Math.max(...selected.map(d => d.name.length))
const outcomes = new Map<string, number>()

function report (d: DestinationConfig, code: number, text: string): void {
  outcomes.set(d.name, code)
  const line = `  ${d.name.padEnd(width)}  ${d.broker.padEnd(11)} ${code === 0 ? 'verified' : `FAILED (${code})`}: ${text}`
  if (code === 0) console.log(line)
  else console.error(line)
}

/** POST the test event; its id, or a CliFailure(2). */
async function publish (type: string, data: Record<string, unknown>, correlationId: string, userId: string): Promise<string> {
  const url = `${gateway}/v1/events/${type}`
  let res: Response
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [HEADERS.tenant]: tenant,
        [HEADERS.correlation]: correlationId,
        [HEADERS.user]: userId
      },
      body: JSON.stringify(data),
      signal: AbortSignal.timeout(seconds * 1000)
    })
  } catch (err) {
    throw new CliFailure(2, `the gateway is not reachable at ${gateway}: ${messageOf(err)}`)
  }
  const body = jsonObject(await res.json().catch(() => ({})))
  if (res.status !== 202 || typeof body.id !== 'string') {
    throw new CliFailure(2, `the gateway answered ${res.status} ${body.code ?? ''} ${body.detail ?? ''}`.trim())
  }
  return body.id
}

/** The destination's wire format for a type routed to it (each one's is compiled at start). */
function formatFor (d: DestinationConfig, type: string): WireFormat {
  const format = d.formats.get(type)
  if (format === undefined) throw new Error(`destination ${d.name} has no wire format for ${type}`)
  return format
}

async function verifyOne (d: DestinationConfig, watcher: Watcher, sent: GatewayEvent): Promise<void> {
  // The test message is the one with the event id, the correlation id or the test's user id, all
  // made for this test. An envelope with none of them is known by the tenant: a test tenant of its
  // own (the default) has no other message; with --tenant or MOCK_TENANT_ID, run verify where no
  // consumer's messages wait.
  const format = formatFor(d, sent.type)
  const carries = (field: string) =>
    format.placements.some(p => 'field' in p ? p.field === field : 'text' in p ? p.text.includes(field) : false)
  const unique = carries('id') || carries('correlationId') || carries('user')
  const marks = [sent.id, sent.correlationId, ...(sent.userId === undefined ? [] : [sent.userId]), ...(unique ? [] : [sent.tenantId])]
  const received = await watcher.receive(marks, Date.now() + seconds * 1000)
  if (received === undefined) return report(d, 3, `event ${sent.id} did not arrive in ${watcher.where} within ${seconds} s`)
  const { problems, checked } = checkEnvelope(format, received, sent)
  let removed: string
  try {
    removed = await received.remove()
  } catch (err) {
    if (problems.length === 0) return report(d, 5, `could not delete the test message from ${watcher.where}: ${messageOf(err)}`)
    removed = 'not deleted'
  }
  if (problems.length > 0) {
    return report(d, 4, `the ${d.envelope} envelope is not what was sent (${removed}): ${problems.join('; ')}`)
  }
  report(d, 0, `${sent.type} ${sent.id} in ${watcher.where}; ${d.envelope} envelope: ${checked.join(', ')} as sent; ${removed}`)
}

for (const [type, destinations] of byType) {
  const entry = catalog.get(type) ?? exitWith(1, `--type: no event type '${type}' in the catalog`)
  // Every catalog type has an example: the catalog's schema requires one.
  const data = firstExample(entry) as Record<string, unknown>
  const correlationId = `verify-${randomUUID()}`
  const userId = `verify-${randomUUID().slice(0, 8)}`
  // The event as the gateway will make it, but for its id and time: what each destination's
  // message fields (routing key, EventBridge source and detail type) will be.
  const draft = createEvent(entry, data, { tenantId: tenant, correlationId, userId })
  // Watch first: a RabbitMQ queue bound after the publish would miss the event.
  const watchers = new Map<DestinationConfig, Watcher>()
  for (const d of destinations) {
    const message = formatFor(d, type).message?.(draft, undefined)
    const routingKey = message?.routingKey ?? draft.routingKey
    const ctx = { gateway, tenant, type, routingKey, message, ruleQueueUrl: config.SQS_QUEUE_URL, connections, kafka }
    try {
      watchers.set(d, await watch(d, ctx))
    } catch (err) {
      if (!(err instanceof CliFailure)) throw err
      report(d, err.code, err.message)
    }
  }
  if (watchers.size === 0) continue
  const watched = [...watchers.keys()].map(d => d.name).join(', ')
  console.log(`POST ${gateway}/v1/events/${type} (tenant ${tenant}, correlation ${correlationId}) for ${watched}`)
  try {
    const id = await publish(type, data, correlationId, userId)
    const sent = { ...draft, id }
    await Promise.all([...watchers].map(([d, w]) => verifyOne(d, w, sent).catch((err: unknown) => {
      if (!(err instanceof CliFailure)) throw err
      report(d, err.code, err.message)
    })))
  } catch (err) {
    if (!(err instanceof CliFailure)) throw err
    for (const d of watchers.keys()) report(d, err.code, err.message)
  } finally {
    await Promise.all([...watchers.values()].map(w => w.close()))
  }
}
await connections.closeAll()

const failed = selected.filter(d => outcomes.get(d.name) !== 0)
const [firstFailed] = failed
if (firstFailed !== undefined) {
  // Every destination has its outcome by now: each one's failure was reported.
  const names = failed.map(d => d.name).join(', ')
  exitWith(outcomes.get(firstFailed.name) ?? 1, `FAILED: ${failed.length} of ${selected.length} destination(s) not verified (${names})`)
}
console.log(`verified: ${selected.length} destination(s) got the event from the gateway as sent`)
