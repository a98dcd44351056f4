import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { forbidden, type ApiKey, type ApiKeys } from '../auth.js'
import { isEventReader, type Broker, type OutgoingEvent } from '../brokers/broker.js'
import { routingKeyFor, type Catalog, type CatalogType } from '../catalog/index.js'
import type { Config } from '../config.js'
import { contextFromHeaders, correlationIdFrom, type RequestContext } from '../context.js'
import type { Delivery } from '../delivery/publisher.js'
import { buildEnvelope } from '../envelope.js'
import { GatewayError, problem, type Problem } from '../errors.js'
import { HEADERS } from '../headers.js'
import { checkIdempotencyKey, fingerprint, type IdempotencyStore, type StoredAnswer } from '../idempotency.js'
import type { Metrics } from '../metrics.js'
import { toFieldErrors } from '../validation.js'
import { AcceptedSchema, ContextHeadersSchema, ProblemSchema, errorResponses } from './schemas.js'
import { sendProblem } from './problems.js'

export interface EventsRouteOptions {
  config: Config
  catalog: Catalog
  delivery: Delivery
  broker: Broker
  idempotency: IdempotencyStore
  metrics: Metrics
  /** Present when API_KEYS_FILE is set: every request then needs a key. */
  apiKeys?: ApiKeys
  /** Load shedding for the event routes (health and metrics stay reachable). */
  pressure: { maxEventLoopDelay: number, maxHeapUsedBytes: number, sampleInterval: number }
}

declare module 'fastify' {
  interface FastifyRequest {
    evgContext: RequestContext | undefined
    apiKey: ApiKey | undefined
  }
  interface FastifyContextConfig {
    eventType?: string
  }
}

type Accepted = { id: string, type: string, status: 'published', correlationId: string }

export function toOutgoing (entry: CatalogType, data: Record<string, unknown>, ctx: RequestContext, source: string, idempotencyKey?: string): OutgoingEvent {
  const envelope = buildEnvelope(entry.type, data, ctx, source)
  const dedupe = entry.dedupeKey === undefined ? undefined : data[entry.dedupeKey]
  const group = entry.groupKey === undefined ? undefined : data[entry.groupKey]
  return {
    envelope,
    body: JSON.stringify(envelope),
    routingKey: routingKeyFor(entry, data),
    ...(typeof dedupe === 'string' || typeof dedupe === 'number' ? { dedupeKey: String(dedupe) } : {}),
    ...(typeof group === 'string' || typeof group === 'number' ? { groupKey: String(group) } : {}),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey })
  }
}

function idempotencyKeyOf (request: FastifyRequest): string | undefined {
  const key = request.headers[HEADERS.idempotencyKey]
  if (key === undefined) return undefined
  if (Array.isArray(key)) throw new GatewayError('EVG_BAD_CONTEXT', 'Idempotency-Key must be sent once')
  checkIdempotencyKey(key)
  return key
}

export async function eventRoutes (app: FastifyInstance, opts: EventsRouteOptions): Promise<void> {
  const { config, catalog, delivery, broker, idempotency, metrics, apiKeys } = opts
  const source = config.EVENT_SOURCE
  /** The refusal when the request's API key may not publish this type (none without keys). */
  const typeRefusal = (request: FastifyRequest, type: string) =>
    request.apiKey !== undefined && !request.apiKey.allowsType(type) ? forbidden(`events of type ${type}`) : undefined

  // Shed load before the process gets into trouble: a blocked event loop or a heap near its
  // limit answers 503 EVG_OVERLOADED at once, so clients back off instead of timing out.
  await app.register(underPressure, {
    ...opts.pressure,
    pressureHandler: (request, reply, type, value) => {
      metrics.rejected.inc({ type: request.routeOptions.config.eventType ?? 'unknown', code: 'EVG_OVERLOADED' })
      request.log.warn({ pressure: type, value }, 'shedding load')
      sendProblem(reply, problem('EVG_OVERLOADED', `the gateway is overloaded (${type}); retry shortly`), 1)
    }
  })

  app.decorateRequest('evgContext', undefined)
  app.decorateRequest('apiKey', undefined)
  // Context comes before the body is even parsed: a bad tenant is refused whatever the body.
  app.addHook('onRequest', async (request, reply) => {
    const correlationId = correlationIdFrom(request.headers)
    reply.header(HEADERS.correlation, correlationId)
    const type = request.routeOptions.config.eventType
    if (type !== undefined) metrics.received.inc({ type })
    request.logFields = { correlationId }
    if (apiKeys !== undefined) {
      const key = apiKeys.authenticate(request.headers)
      request.apiKey = key
      request.logFields.apiKey = key.name
    }
    const ctx = contextFromHeaders(request.headers, correlationId, config)
    request.evgContext = ctx
    request.logFields.tenantId = ctx.tenantId
    if (request.apiKey !== undefined && !request.apiKey.allowsTenant(ctx.tenantId)) throw forbidden('for this tenant')
    const refused = type === undefined ? undefined : typeRefusal(request, type)
    if (refused !== undefined) throw refused
  })

  const single = (entry: CatalogType) => async (request: FastifyRequest, reply: FastifyReply) => {
    const ctx = request.evgContext as RequestContext
    const data = request.body as Record<string, unknown>
    const key = idempotencyKeyOf(request)
    const publishOne = async (): Promise<StoredAnswer> => {
      const event = toOutgoing(entry, data, ctx, source, key)
      const [result] = await delivery.publish([event])
      if (result === undefined || !result.ok) throw result?.error ?? new GatewayError('EVG_INTERNAL')
      const fields = request.logFields as Record<string, unknown>
      fields.eventId = event.envelope.id
      fields.type = entry.type
      const body: Accepted = { id: event.envelope.id, type: entry.type, status: 'published', correlationId: ctx.correlationId }
      return { status: 202, body }
    }
    if (key === undefined) {
      const answer = await publishOne()
      return reply.code(answer.status).send(answer.body)
    }
    const run = await idempotency.run(ctx.tenantId, key, fingerprint(entry.type, data), publishOne)
    if (run.replayed) {
      metrics.idempotentReplays.inc()
      reply.header(HEADERS.idempotencyReplayed, 'true')
    }
    const answer = run.answer as StoredAnswer
    return reply.code(answer.status).send(answer.body)
  }

  for (const entry of catalog.list()) {
    app.post(`/v1/events/${entry.type}`, {
      config: { eventType: entry.type },
      schema: {
        tags: [entry.domain],
        summary: `Publish ${entry.type}`,
        description: `${entry.description}\n\nRouting key: \`${entry.routingKey}\`${entry.dedupeKey ? `; dedupe key: \`${entry.dedupeKey}\`` : ''}.`,
        operationId: `publish_${entry.type.replace(/[^A-Za-z0-9]/g, '_')}`,
        headers: ContextHeadersSchema,
        body: entry.schema,
        response: { 202: AcceptedSchema, ...errorResponses }
      }
    }, single(entry))
  }

  const BatchSchema = Type.Object({
    events: Type.Array(Type.Object({
      type: Type.String({ minLength: 1, maxLength: 128 }),
      data: Type.Record(Type.String(), Type.Unknown()),
      idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 255 }))
    }, { additionalProperties: false }), { minItems: 1, maxItems: config.BATCH_MAX_EVENTS })
  }, {
    additionalProperties: false,
    examples: [{ events: catalog.list().slice(0, 2).map(e => ({ type: e.type, data: (e.schema as { examples: unknown[] }).examples[0] })) }]
  })
  const BatchResultSchema = Type.Object({
    results: Type.Array(Type.Union([
      Type.Object({ id: Type.String(), type: Type.String(), status: Type.String() }),
      Type.Object({ error: ProblemSchema })
    ]))
  })

  app.post('/v1/events', {
    schema: {
      tags: ['batch'],
      summary: 'Publish several events at once',
      description: `At most BATCH_MAX_EVENTS (${config.BATCH_MAX_EVENTS}) events. Results come in request order. 202 when all were taken, 207 when some were, a problem when none was.`,
      operationId: 'publish_batch',
      headers: ContextHeadersSchema,
      body: BatchSchema,
      response: { 202: BatchResultSchema, 207: BatchResultSchema, ...errorResponses }
    }
  }, async (request, reply) => {
    const ctx = request.evgContext as RequestContext
    const items = (request.body as { events: { type: string, data: Record<string, unknown>, idempotencyKey?: string }[] }).events
    const results: (Accepted | { error: Problem } | undefined)[] = new Array(items.length)
    const toSend: { index: number, event: OutgoingEvent, key?: string, print?: string }[] = []
    const firstOfKey = new Map<string, { index: number, print: string }>()
    const repeats: { index: number, of: number }[] = []

    items.forEach((item, index) => {
      const fail = (p: Problem) => {
        metrics.rejected.inc({ type: catalog.get(item.type) ? item.type : 'unknown', code: p.code })
        results[index] = { error: p }
      }
      const entry = catalog.get(item.type)
      if (entry === undefined) return fail(problem('EVG_UNKNOWN_TYPE', `no event type '${item.type.slice(0, 128)}'`))
      metrics.received.inc({ type: entry.type })
      const refused = typeRefusal(request, entry.type)
      if (refused !== undefined) return fail(refused.toProblem())
      if (!entry.validate(item.data)) {
        return fail(problem('EVG_VALIDATION', `events[${index}].data is not a valid ${entry.type}`, { errors: toFieldErrors(entry.validate.errors, `/events/${index}/data`) }))
      }
      const key = item.idempotencyKey
      if (key === undefined) {
        toSend.push({ index, event: toOutgoing(entry, item.data, ctx, config.EVENT_SOURCE) })
        return
      }
      try {
        checkIdempotencyKey(key)
        const print = fingerprint(entry.type, item.data)
        const earlier = firstOfKey.get(key)
        if (earlier !== undefined) {
          if (earlier.print !== print) throw new GatewayError('EVG_IDEMPOTENCY_CONFLICT', 'this idempotencyKey is used twice in the batch with different events')
          repeats.push({ index, of: earlier.index })
          return
        }
        const stored = idempotency.lookup(ctx.tenantId, key, print)
        if (stored !== undefined) {
          metrics.idempotentReplays.inc()
          results[index] = stored.body as Accepted
          return
        }
        firstOfKey.set(key, { index, print })
        toSend.push({ index, event: toOutgoing(entry, item.data, ctx, config.EVENT_SOURCE, key), key, print })
      } catch (err) {
        if (err instanceof GatewayError) return fail(err.toProblem())
        throw err
      }
    })

    let retryAfter: number | undefined
    if (toSend.length > 0) {
      const outcomes = await delivery.publish(toSend.map(s => s.event))
      outcomes.forEach((outcome, k) => {
        const sent = toSend[k] as (typeof toSend)[number]
        if (outcome.ok) {
          const accepted: Accepted = { id: sent.event.envelope.id, type: sent.event.envelope.type, status: 'published', correlationId: ctx.correlationId }
          results[sent.index] = accepted
          if (sent.key !== undefined) idempotency.remember(ctx.tenantId, sent.key, sent.print as string, { status: 202, body: accepted })
        } else {
          retryAfter = outcome.error.retryAfter ?? retryAfter
          metrics.rejected.inc({ type: sent.event.envelope.type, code: outcome.error.code })
          results[sent.index] = { error: outcome.error.toProblem() }
        }
      })
    }
    for (const r of repeats) results[r.index] = results[r.of]

    const all = results as (Accepted | { error: Problem })[]
    const failures = all.filter((r): r is { error: Problem } => 'error' in r)
    Object.assign(request.logFields as Record<string, unknown>, { events: all.length, accepted: all.length - failures.length })
    if (failures.length === 0) return reply.code(202).send({ results: all })
    if (failures.length < all.length) return reply.code(207).send({ results: all })
    const codes = new Set(failures.map(f => f.error.code))
    const first = (failures[0] as { error: Problem }).error
    const p = codes.size === 1
      ? problem(first.code, 'no event in the batch was accepted', { results: all })
      : problem('EVG_VALIDATION', 'no event in the batch was accepted; see results', { results: all })
    return sendProblem(reply, p, p.status === 503 ? retryAfter : undefined)
  })

  const ReadQuerySchema = Type.Object({
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    after: Type.Optional(Type.Integer({ minimum: 0, description: 'Cursor: the `next` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
  }, { additionalProperties: false })

  app.get('/v1/events', {
    schema: {
      tags: ['read-back'],
      summary: 'Read back stored events (local broker only)',
      description: 'The calling tenant\'s envelopes, oldest first. Poll with `after` = the previous `next`.',
      operationId: 'read_events',
      headers: ContextHeadersSchema,
      querystring: ReadQuerySchema,
      response: {
        200: Type.Object({ events: Type.Array(Type.Record(Type.String(), Type.Unknown())), next: Type.Integer() }),
        ...errorResponses
      }
    }
  }, async (request, reply) => {
    if (!isEventReader(broker)) throw new GatewayError('EVG_NOT_FOUND', `reading events back needs BROKER=local (this gateway uses ${broker.name})`)
    const q = request.query as { type?: string, after?: number, limit?: number }
    const page = broker.read({ tenantId: (request.evgContext as RequestContext).tenantId, limit: q.limit ?? 100, ...(q.type === undefined ? {} : { type: q.type }), ...(q.after === undefined ? {} : { after: q.after }) })
    // The stored envelopes are already JSON: stitch them rather than parse and re-serialize.
    return reply.type('application/json').send(`{"events":[${page.events.join(',')}],"next":${page.next}}`)
  })
}
