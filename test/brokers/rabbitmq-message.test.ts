import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Options } from 'amqplib'
import t from 'tap'
import type { OutgoingEvent } from '../../src/brokers/broker.js'
import { PublishOptions } from '../../src/brokers/rabbitmq/message.js'
import { compileWireFormat } from '../../src/envelopes/index.js'
import type { GatewayEvent } from '../../src/envelopes/event.js'

// amqplib's own argument handling and property encoder: what ch.publish() runs on the options we
// give it, before a byte leaves. Not in the package's exports, so loaded by path.
const require = createRequire(import.meta.url)
const amqplib = join(require.resolve('amqplib'), '..', 'lib')
const Args = require(join(amqplib, 'api_args.js')) as {
  publish: (exchange: string, routingKey: string, options: Options.Publish) => Record<string,
  unknown>
}
const defs = require(join(amqplib, 'defs.js')) as {
  BasicProperties: number,
  encodeProperties: (id: number, channel: number, size: number, fields: Record<string, unknown>) => Buffer
}
const encode = (options: Options.Publish) => defs.encodeProperties(
  defs.BasicProperties,
  1,
  1000,
  Args.publish('evg', 'comms.call.ended', options)
)

/** The properties as docs/envelopes.md lists them, in a fresh object per message (as before the reuse). */
function fresh ({ event, contentType, traceparent }: OutgoingEvent, appId: string): Options.Publish {
  const headers: Record<string, string> = {
    'x-event-type': event.type,
    'x-tenant-id': event.tenantId,
    'x-correlation-id': event.correlationId
  }
  if (event.userId !== undefined) headers['x-user-id'] = event.userId
  if (event.accountId !== undefined) headers['x-account-id'] = event.accountId
  if (traceparent !== undefined) headers.traceparent = traceparent
  return {
    persistent: true,
    mandatory: true,
    contentType,
    messageId: event.id,
    correlationId: event.correlationId,
    timestamp: Math.floor(Date.parse(event.time) / 1000),
    type: event.type,
    appId,
    headers
  }
}

function outgoing (n: number, optional: { user: boolean, account: boolean, trace: boolean }): OutgoingEvent {
  const event: GatewayEvent = {
    id: `01a206b9-abd8-7270-8c91-8f2468f13e${String(n).padStart(2, '0')}`,
    type: n % 2 === 0 ? 'call.ended' : 'speaker.onboarded',
    time: `2026-11-23T05:0${n % 10}:00.000Z`,
    tenantId: `7d1b0c9e-3f2a-4b8c-9d0e-1a2b3c4d5e${String(n).padStart(2, '0')}`,
    correlationId: `corr-${n}`,
    data: {},
    routingKey: 'comms.call.ended',
    ...(optional.user ? { userId: `user-${n}` } : {}),
    ...(optional.account ? { accountId: `acct-${n}` } : {})
  }
  return {
    event,
    body: '{}',
    contentType: n % 3 === 0 ? 'application/json' : 'application/cloudevents+json',
    ...(optional.trace ? { traceparent: `00-4bf92f3577b34da6a3ce929d0e0e47${String(n).padStart(2, '0')}-00f067aa0ba902b7-01` } : {})
  }
}

const combinations = [false, true].flatMap(user => [false, true].flatMap(account => [false, true].map(trace => ({ user, account, trace }))))

t.test('the refilled properties encode to the same bytes as a fresh object, for every mix of optional headers, in any order', async t => {
  const options = new PublishOptions('event-gateway')
  // Every combination after every other: a header the previous message had must not linger.
  let n = 0
  for (const before of combinations) {
    for (const now of combinations) {
      const first = outgoing(n++, before)
      t.same(encode(options.for(first)), encode(fresh(first, 'event-gateway')), `after ${JSON.stringify(before)}`)
      const second = outgoing(n++, now)
      const bytes = encode(options.for(second))
      t.same(bytes, encode(fresh(second, 'event-gateway')), `${JSON.stringify(now)} after ${JSON.stringify(before)}`)
    }
  }
  t.equal(n, 128)
})

t.test('bytes encoded before the next refill stay as they were: amqplib copies, it keeps no reference', async t => {
  const options = new PublishOptions('event-gateway')
  const first = outgoing(1, { user: true, account: true, trace: true })
  const bytes = encode(options.for(first))
  const copy = Buffer.from(bytes)
  encode(options.for(outgoing(2, { user: false, account: false, trace: false })))
  t.same(bytes, copy, 'the first message\'s encoded properties are unchanged')
  t.ok(bytes.includes(Buffer.from('user-1')) && bytes.includes(Buffer.from('acct-1')), 'and still carry its own optional headers')
})

t.test('declared headers: the defaults, rendered by the template, are the bytes the default path writes; added ones follow', async t => {
  const options = new PublishOptions('event-gateway')
  // Compiled per type, as the gateway does: {{type}} is a constant of the type's format.
  const format = (type: string, headers: Record<string, string | null>) => compileWireFormat(
    { envelope: 'cloudevents', message: { headers } },
    'rabbitmq',
    { type, schema: { type: 'object' }, source: 's', module: 's' }
  )
  let n = 0
  for (const optional of combinations) {
    const plain = outgoing(n++, optional)
    const defaultsOnly = format(plain.event.type, {})
    const withMore = format(plain.event.type, { 'x-team': 'ocelot', 'x-user-id': null })
    const rendered = { ...plain, message: defaultsOnly.message?.(plain.event, plain.traceparent) as NonNullable<OutgoingEvent['message']> }
    // One PublishOptions for both paths, alternating: neither leaves anything in the other's object.
    t.same(
      encode(options.for(rendered)),
      encode(fresh(plain, 'event-gateway')),
      `DEFAULT_HEADERS render as the broker's defaults, ${JSON.stringify(optional)}`
    )
    t.same(encode(options.for(plain)), encode(fresh(plain, 'event-gateway')))
    const more = { ...plain, message: withMore.message?.(plain.event, plain.traceparent) as NonNullable<OutgoingEvent['message']> }
    const { 'x-user-id': _user, ...kept } = (fresh(plain, 'event-gateway').headers ?? {}) as Record<string, unknown>
    t.same(
      encode(options.for(more)),
      encode({ ...fresh(plain, 'event-gateway'), headers: { ...kept, 'x-team': 'ocelot' } }),
      'a header added, one dropped'
    )
  }
})
