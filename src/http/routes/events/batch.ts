import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { ApiKeys } from '../../context/api-keys.js'
import { firstExample, routingKeyErrors, type Catalog } from '../../../catalog/index.js'
import type { Config } from '../../../config/index.js'
import type { FanOut } from '../../../delivery/fan-out.js'
import type { Accepted, Intake, IntakeItem } from '../../../delivery/intake.js'
import { ERRORS, GatewayError, problem, type ErrorCode, type Problem } from '../../../errors.js'
import { createEvent } from '../../../envelopes/event.js'
import { checkIdempotencyKey } from '../../../state/idempotency.js'
import type { Metrics } from '../../../observability/metrics.js'
import { MAX_BATCH_FIELD_ERRORS, MAX_FIELD_ERRORS, validationDetails } from '../../../validation/index.js'
import { countRejection, sendProblem } from '../../problems/index.js'
import { addLogFields } from '../../hooks/access-log.js'
import { zip } from '../../../delivery/zip.js'
import { BatchResultsSchema, contextHeaders, eventSecurity, publishProblemResponses } from '../schemas.js'
import { contextOf, idempotencyKeyOf, typeRefusal } from '../../context/hook.js'

type Result = Accepted | { error: Problem }

/**
 * The code of a batch none of whose events was taken: theirs when they agree; when brokers
 * failed in different ways, "try later" if any may succeed later, else "refused"; otherwise
 * the client's to fix.
 */
function batchCode (codes: ErrorCode[]): ErrorCode {
  const distinct = new Set(codes)
  const [first] = distinct
  if (distinct.size === 1 && first !== undefined) return first
  if (codes.every(c => ERRORS[c].status >= 500)) {
    return codes.some(c => ERRORS[c].retryable) ? 'EVG_BROKER_UNAVAILABLE' : 'EVG_BROKER_REJECTED'
  }
  return 'EVG_VALIDATION'
}

/** `POST /v1/events`: several events of any types; results in request order. */
export function batchRoute (
  app: FastifyInstance,
  opts: { config: Config, catalog: Catalog, fanOut: FanOut, intake: Intake, metrics: Metrics, apiKeys?: ApiKeys }
): void {
  const { config, catalog, fanOut, intake, metrics } = opts
  const BatchSchema = Type.Object({
    events: Type.Array(Type.Object({
      type: Type.String({ minLength: 1, maxLength: 128 }),
      data: Type.Record(Type.String(), Type.Unknown()),
      idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 255 }))
    }, { additionalProperties: false }), { minItems: 1, maxItems: config.BATCH_MAX_EVENTS })
  }, {
    additionalProperties: false,
    // The document's BatchRequest: its items there are a union on `type` (src/http/routes/openapi.ts); here
    // each item's data is checked against its type below, so one bad item is refused alone.
    'x-component': 'BatchRequest',
    examples: [{ events: catalog.list().slice(0, 2).map(e => ({ type: e.type, data: firstExample(e) })) }]
  })

  app.withTypeProvider<TypeBoxTypeProvider>().post('/v1/events', {
    config: { publishes: true },
    schema: {
      tags: ['batch-publish'],
      summary: 'Publish several events at once',
      description: `At most BATCH_MAX_EVENTS (${config.BATCH_MAX_EVENTS}) events. Results come in request order. ` +
        '202 when all were taken, 207 when some were, a problem when none was.',
      operationId: 'publish_batch',
      headers: contextHeaders(config),
      security: eventSecurity(opts.apiKeys !== undefined),
      body: BatchSchema,
      response: {
        202: { description: 'Every event was taken', content: { 'application/json': { schema: BatchResultsSchema } } },
        207: {
          description: 'Some events were taken and some were not: a refused one has its problem as `error`',
          content: { 'application/json': { schema: BatchResultsSchema } }
        },
        ...publishProblemResponses
      }
    }
  }, async (request, reply) => {
    const ctx = contextOf(request)
    const items = request.body.events
    // One key for the whole request: each event is kept under it and its position, so a repeat
    // of the batch replays every event (and completes any that failed) in the same key space.
    const requestKey = idempotencyKeyOf(request)
    if (requestKey !== undefined) {
      const both = items.findIndex(item => item.idempotencyKey !== undefined)
      if (both !== -1) {
        const detail = `send Idempotency-Key for the whole batch or idempotencyKey per event, not both (events[${both}] has one)`
        throw new GatewayError('EVG_VALIDATION', detail, {
          extensions: {
            errors: [{ path: `/events/${both}/idempotencyKey`, message: 'must not be set when the request has an Idempotency-Key header' }]
          }
        })
      }
    }
    metrics.batchSize.observe(items.length)
    const results: (Result | undefined)[] = new Array(items.length)
    const valid: { index: number, item: IntakeItem }[] = []
    let errorBudget = MAX_BATCH_FIELD_ERRORS
    items.forEach((item, index) => {
      const fail = (p: Problem) => {
        countRejection(request, p.code, catalog.get(item.type) ? item.type : 'unknown')
        results[index] = { error: p }
      }
      const entry = catalog.get(item.type)
      if (entry === undefined) return fail(problem('EVG_UNKNOWN_TYPE', `no event type '${item.type.slice(0, 128)}'`))
      metrics.received.inc({ type: entry.type })
      const refused = typeRefusal(request, entry.type)
      if (refused !== undefined) return fail(refused.toProblem())
      if (!entry.validate(item.data)) {
        const details = validationDetails(entry.validate.errors, `/events/${index}/data`, Math.min(MAX_FIELD_ERRORS, errorBudget))
        errorBudget -= details.errors.length
        return fail(problem('EVG_VALIDATION', `events[${index}].data is not a valid ${entry.type}`, details))
      }
      const key = requestKey === undefined ? item.idempotencyKey : `${requestKey} ${index}`
      const event = createEvent(entry, item.data, ctx, key)
      const dataPath = `/events/${index}/data`
      const invalid = routingKeyErrors(entry, event.routingKey, dataPath) ?? fanOut.fieldErrors(event, dataPath)
      if (invalid !== undefined) {
        return fail(problem('EVG_VALIDATION', `events[${index}].data is not a valid ${entry.type}`, { errors: invalid }))
      }
      if (item.idempotencyKey !== undefined) {
        try {
          checkIdempotencyKey(item.idempotencyKey, `/events/${index}/idempotencyKey`)
        } catch (err) {
          if (!(err instanceof GatewayError)) throw err
          return fail(err.toProblem())
        }
      }
      valid.push({ index, item: { event } })
    })

    let retryAfter: number | undefined
    if (requestKey !== undefined) {
      // The whole batch, valid or not, is what the key stands for.
      const refused = await intake.pinBatch(ctx.tenantId, requestKey, items)
      if (refused !== undefined) throw refused
    }
    const outcomes = valid.length === 0 ? [] : await intake.accept(valid.map(v => v.item), request.traceContext)
    for (const [{ index, item }, outcome] of zip(valid, outcomes)) {
      if (outcome.ok) {
        if (outcome.replayed) metrics.idempotentReplays.inc()
        results[index] = outcome.accepted
        continue
      }
      retryAfter = Math.max(retryAfter ?? 0, outcome.error.retryAfter ?? 0) || undefined
      countRejection(request, outcome.error.code, item.event.type)
      results[index] = { error: outcome.error.toProblem() }
    }

    // every event has its result by now
    const all = Array.from(results, r => r ?? { error: problem('EVG_INTERNAL') })
    const failures = all.filter((r): r is { error: Problem } => 'error' in r)
    addLogFields(request, { events: all.length, accepted: all.length - failures.length })
    if (failures.length === 0) return reply.code(202).send({ results: all })
    if (failures.length < all.length) return reply.code(207).send({ results: all })
    const p = problem(batchCode(failures.map(f => f.error.code)), 'no event in the batch was accepted; see results', { results: all })
    return sendProblem(reply, p, ERRORS[p.code].retryable ? retryAfter : undefined, true)
  })
}
