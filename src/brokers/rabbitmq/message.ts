import type { Options } from 'amqplib'
import type { GatewayEvent } from '../../envelopes/event.js'
import { BrokerError, routingKeyOf, tracestateOf, type OutgoingEvent, type PublishOutcome } from '../broker.js'

/** What a publish's confirm came back as: null (confirmed), an error (nack, channel closed) or a return before it. */
export const RETURNED = Symbol('returned')
export type ConfirmResult = Error | typeof RETURNED | null
const OK: PublishOutcome = Object.freeze({ ok: true })

interface Headers {
  'x-event-type': string
  'x-tenant-id': string
  'x-correlation-id': string
  'x-user-id': string | undefined
  'x-account-id': string | undefined
  traceparent: string | undefined
  tracestate: string | undefined
}

/**
 * The AMQP properties and headers every message carries (docs/envelopes.md): persistent and
 * mandatory. One object per broker, refilled for each message, never a new one: amqplib makes
 * the headers object the prototype of the table it encodes (`Object.create(options.headers)`),
 * and a new prototype per message costs V8 a map migration and a slow `for…in` each time. That
 * is safe because `ch.publish()` encodes the properties before it returns, and reads them only
 * (test/brokers/rabbitmq-message.test.ts checks the bytes). Absent headers stay `undefined`,
 * which amqplib leaves out of the table, so every message has the same keys in the same order as
 * a fresh object would give. Something that writes into a caller's headers (an APM agent
 * patching amqplib, say) would see its keys carried to later messages: none is loaded.
 */
export class PublishOptions {
  readonly #appId: string
  readonly #headers: Headers = {
    'x-event-type': '',
    'x-tenant-id': '',
    'x-correlation-id': '',
    'x-user-id': undefined,
    'x-account-id': undefined,
    traceparent: undefined,
    tracestate: undefined
  }

  readonly #options: Properties<Headers>
  /**
   * For destinations that declare their headers: one properties object per set of header names
   * (a header missing for an event leaves its name out), refilled as the default one is.
   */
  readonly #declared = new Map<string, Properties<Record<string, unknown>>>()

  constructor (appId: string) {
    this.#appId = appId
    this.#options = properties(appId, this.#headers)
  }

  /** The options for this message; valid until the next call (pass them to `ch.publish()` at once). */
  for (outgoing: OutgoingEvent): Options.Publish {
    const { event, contentType, traceparent, message } = outgoing
    const options = message?.headers === undefined
      ? this.#defaults(event, traceparent, tracestateOf(outgoing))
      : this.#declaredHeaders(message.headers)
    const declared = message?.properties
    options.contentType = contentType
    options.messageId = event.id
    options.correlationId = declared?.correlationId ?? event.correlationId
    options.timestamp = Math.floor(Date.parse(event.time) / 1000)
    options.type = declared?.type ?? event.type
    options.appId = declared?.appId ?? this.#appId
    return options
  }

  #defaults (event: GatewayEvent, traceparent: string | undefined, tracestate: string | undefined): Properties<Headers> {
    const headers = this.#headers
    headers['x-event-type'] = event.type
    headers['x-tenant-id'] = event.tenantId
    headers['x-correlation-id'] = event.correlationId
    headers['x-user-id'] = event.userId
    headers['x-account-id'] = event.accountId
    headers.traceparent = traceparent
    headers.tracestate = tracestate
    return this.#options
  }

  #declaredHeaders (values: Readonly<Record<string, unknown>>): Properties<Record<string, unknown>> {
    const names = Object.keys(values)
    const key = names.join('\n')
    let options = this.#declared.get(key)
    if (options === undefined) {
      options = properties(this.#appId, Object.fromEntries(names.map(n => [n, undefined])))
      this.#declared.set(key, options)
    }
    const headers = options.headers
    for (const name of names) headers[name] = values[name]
    return options
  }
}

type Properties<H> = Options.Publish & {
  headers: H
  messageId: string
  correlationId: string
  timestamp: number
  type: string
  appId: string
  contentType: string
}

function properties<H> (appId: string, headers: H): Properties<H> {
  return { persistent: true, mandatory: true, contentType: '', messageId: '', correlationId: '', timestamp: 0, type: '', appId, headers }
}

/** A confirm's result as the publish outcome clients see: unroutable and malformed for good, nacks and lost channels retryable. */
export function outcomeOf (result: ConfirmResult | BrokerError, outgoing: OutgoingEvent): PublishOutcome {
  if (result === null) return OK
  if (result === RETURNED) {
    const message = `no queue is bound for routing key '${routingKeyOf(outgoing)}' and no alternate exchange keeps it`
    return { ok: false, error: new BrokerError(message, { retryable: false, reason: 'unroutable' }) }
  }
  if (result instanceof BrokerError) return { ok: false, error: result }
  if (result instanceof RangeError) {
    return { ok: false, error: new BrokerError(result.message, { retryable: false, reason: 'malformed', cause: result }) }
  }
  const closed = /closed/i.test(result.message)
  const message = closed ? `channel closed before the confirm: ${result.message}` : `RabbitMQ nacked the event: ${result.message}`
  const error = new BrokerError(message, { retryable: true, reason: closed ? 'connection_lost' : 'nack', answered: !closed, cause: result })
  return { ok: false, error }
}
