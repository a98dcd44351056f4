import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { ApiKey, ApiKeys } from '../context/api-keys.js'
import { GatewayError, messageOf } from '../../errors.js'
import { fastifyFields } from '../problems/index.js'
import { addLogFields } from '../hooks/access-log.js'
import type { DeadLetterQuery, TenantScope } from '../../spool/outbox.js'
import type { Spool } from '../../spool/index.js'
import { eventSecurity, problemResponses } from './schemas.js'

const Name = Type.String({ minLength: 1, maxLength: 64, description: 'A spooled destination\'s name' })

const OutboxSchema = Type.Object({
  store: Type.Enum(['sqlite', 'postgres'], { description: 'Where the outbox is (SPOOL_URL)' }),
  destinations: Type.Array(Type.Object({
    name: Type.String(),
    depth: Type.Integer({ description: 'Events waiting' }),
    bytes: Type.Integer({ description: 'Their envelopes\' bytes' }),
    oldestAgeSeconds: Type.Number({ description: 'Age of the oldest waiting event; 0 when none' }),
    deadLetters: Type.Integer(),
    deadBytes: Type.Integer()
  }))
}, { description: 'Each spooled destination\'s outbox', 'x-component': 'Outbox' })

const DeadLetterSchema = Type.Object({
  id: Type.Integer({ description: 'The dead letter\'s id: what replay and purge take' }),
  destination: Type.String(),
  tenantId: Type.String(),
  eventId: Type.String(),
  type: Type.String(),
  reason: Type.String({ description: 'Why it was set aside: the broker\'s refusal, or the attempts it failed' }),
  attempts: Type.Integer({ description: 'Failed attempts the broker answered' }),
  acceptedAt: Type.String({ format: 'date-time' }),
  failedAt: Type.String({ format: 'date-time' }),
  envelope: Type.Unknown({ description: 'The envelope as the destination was to get it' })
}, { 'x-component': 'DeadLetter' })

const DeadLettersSchema = Type.Object({
  deadLetters: Type.Array(DeadLetterSchema, { description: 'Oldest first' }),
  next: Type.Integer({ description: 'Cursor for the next page: the last id returned (or `after`)' })
}, { description: 'A page of dead letters', 'x-component': 'DeadLetters' })

const SelectionSchema = Type.Object({
  destination: Type.Optional(Name),
  ids: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), {
    minItems: 1,
    maxItems: 1000,
    description: 'Only these dead letters'
  })),
  all: Type.Optional(Type.Boolean({
    description: 'Every dead letter (of the destination, when one is named); needed when neither destination nor ids is'
  }))
}, {
  additionalProperties: false,
  description: 'Which dead letters: a destination\'s, some ids, or all (`"all": true`), never by accident',
  'x-component': 'DeadLetterSelection'
})

/** A key's tenant patterns as the stores take them; undefined: every tenant (`*`). */
export function tenantScope (key: Pick<ApiKey, 'tenants'>): TenantScope | undefined {
  if (key.tenants.includes('*')) return undefined
  return {
    exact: key.tenants.filter(t => !t.endsWith('*')),
    prefixes: key.tenants.filter(t => t.endsWith('*')).map(t => t.slice(0, -1))
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The admin key's tenants (undefined: every tenant, or auth off). */
    adminTenants?: TenantScope
  }
}

/** A stored envelope as JSON; the outbox keeps what the gateway serialized. */
const parseEnvelope = (text: string): unknown => JSON.parse(text)

export interface AdminOptions {
  /** Present when some destination is spooled. */
  spool?: Spool
  apiKeys?: ApiKeys
}

/**
 * `/v1/admin`: the outbox and its dead letters, across tenants. With API_KEYS_FILE, only keys
 * with `"admin": true`, and only their tenants' dead letters (a key for `*`: every tenant's);
 * without it (auth off), open like every other route.
 */
export async function adminRoutes (app: FastifyInstance, opts: AdminOptions): Promise<void> {
  const { apiKeys } = opts
  const typed = app.withTypeProvider<TypeBoxTypeProvider>()
  const security = eventSecurity(apiKeys !== undefined)
  // The outbox failing (PostgreSQL unreachable) is a 503 to retry, not an internal error.
  app.setErrorHandler(async (err, _request, reply) => {
    // Fastify's own errors (validation, a bad request) and ours are answered as they are
    const fe = fastifyFields(err)
    if (err instanceof GatewayError || fe.validation !== undefined || fe.statusCode !== undefined) throw err
    reply.log.error({ err: messageOf(err) }, 'admin: the outbox failed')
    throw new GatewayError('EVG_SPOOL_UNAVAILABLE', 'the outbox cannot be read now; try again shortly', { retryAfter: 1 })
  })
  app.addHook('onRequest', async request => {
    if (apiKeys === undefined) return
    const key = apiKeys.authenticate(request.headers)
    addLogFields(request, { apiKey: key.name })
    if (!key.admin) throw new GatewayError('EVG_FORBIDDEN', 'this API key may not use the admin API')
    const tenants = tenantScope(key)
    if (tenants !== undefined) request.adminTenants = tenants
  })
  /** The outbox's counts are every tenant's together: only for keys of every tenant. */
  const everyTenant = (tenants: TenantScope | undefined): void => {
    if (tenants !== undefined) {
      throw new GatewayError('EVG_FORBIDDEN', 'the outbox\'s counts are every tenant\'s: only an admin key for tenants ["*"] may read them')
    }
  }
  const spoolOf = (destination?: string): Spool => {
    const spool = opts.spool
    if (spool === undefined) {
      throw new GatewayError('EVG_NOT_FOUND',
        'no destination is spooled (DELIVERY_MODE=spool, or "delivery": "spool" in ROUTES_FILE): there is no outbox')
    }
    if (destination !== undefined && !spool.destinations.includes(destination)) {
      throw new GatewayError('EVG_NOT_FOUND', `no spooled destination named '${destination.slice(0, 64)}'`)
    }
    return spool
  }
  const selection = (body: {
    destination?: string | undefined
    ids?: number[] | undefined
    all?: boolean | undefined
  }, tenants: TenantScope | undefined): DeadLetterQuery => {
    if (body.destination === undefined && body.ids === undefined && body.all !== true) {
      throw new GatewayError('EVG_VALIDATION', 'name a destination, ids, or "all": true')
    }
    return {
      ...(body.destination === undefined ? {} : { destination: body.destination }),
      ...(body.ids === undefined ? {} : { ids: body.ids }),
      ...(tenants === undefined ? {} : { tenants })
    }
  }

  typed.get('/v1/admin/outbox', {
    schema: {
      tags: ['admin'],
      summary: 'Each spooled destination\'s outbox: depth, oldest age, dead letters',
      operationId: 'admin_outbox',
      security,
      response: { 200: OutboxSchema, ...problemResponses }
    }
  }, async request => {
    everyTenant(request.adminTenants)
    const spool = spoolOf()
    const states = await spool.states()
    return {
      store: spool.store.kind,
      destinations: states.map(s => ({
        name: s.destination,
        depth: s.depth,
        bytes: s.bytes,
        oldestAgeSeconds: s.oldestAgeSeconds,
        deadLetters: s.deadLetters,
        deadBytes: s.deadBytes
      }))
    }
  })

  typed.get('/v1/admin/dead-letters', {
    schema: {
      tags: ['admin'],
      summary: 'List dead letters, oldest first',
      operationId: 'admin_dead_letters',
      security,
      querystring: Type.Object({
        destination: Type.Optional(Name),
        after: Type.Optional(Type.Integer({
          minimum: 0,
          maximum: Number.MAX_SAFE_INTEGER,
          description: 'Cursor: the `next` of the previous page'
        })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 }))
      }, { additionalProperties: false }),
      response: { 200: DeadLettersSchema, ...problemResponses }
    }
  }, async request => {
    const q = request.query
    const spool = spoolOf(q.destination)
    const rows = await spool.store.deadLetters({
      limit: q.limit ?? 100,
      ...(q.destination === undefined ? {} : { destination: q.destination }),
      ...(q.after === undefined ? {} : { after: q.after }),
      ...(request.adminTenants === undefined ? {} : { tenants: request.adminTenants })
    })
    return {
      deadLetters: rows.map(r => ({
        id: r.id,
        destination: r.destination,
        tenantId: r.tenant,
        eventId: r.eventId,
        type: r.type,
        reason: r.reason,
        attempts: r.attempts,
        acceptedAt: new Date(r.acceptedAt).toISOString(),
        failedAt: new Date(r.failedAt).toISOString(),
        envelope: parseEnvelope(r.envelope)
      })),
      next: rows.at(-1)?.id ?? q.after ?? 0
    }
  })

  typed.post('/v1/admin/dead-letters/replay', {
    schema: {
      tags: ['admin'],
      summary: 'Put dead letters back in the outbox: the relay publishes them again',
      description: 'They join the end of their destination\'s outbox with no attempts counted, ' +
        'under their own event ids (consumers that saw one drop it).',
      operationId: 'admin_replay_dead_letters',
      security,
      body: SelectionSchema,
      response: { 200: Type.Object({ replayed: Type.Integer() }, { description: 'How many went back' }), ...problemResponses }
    }
  }, async request => {
    const spool = spoolOf(request.body.destination)
    return { replayed: await spool.replay(selection(request.body, request.adminTenants)) }
  })

  typed.post('/v1/admin/dead-letters/purge', {
    schema: {
      tags: ['admin'],
      summary: 'Delete dead letters for good',
      operationId: 'admin_purge_dead_letters',
      security,
      body: SelectionSchema,
      response: { 200: Type.Object({ purged: Type.Integer() }, { description: 'How many were deleted' }), ...problemResponses }
    }
  }, async request => {
    const spool = spoolOf(request.body.destination)
    return { purged: await spool.purge(selection(request.body, request.adminTenants)) }
  })

  typed.post('/v1/admin/outbox/purge', {
    schema: {
      tags: ['admin'],
      summary: 'Delete the events still waiting for a destination no longer spooled',
      description: 'For a destination gone from the routes: nothing relays its events any more, and they count ' +
        'against OUTBOX_MAX_*. Refused (400) for a destination spooled now. Dead letters are not touched.',
      operationId: 'admin_purge_outbox',
      security,
      body: Type.Object({
        destination: Type.String({ minLength: 1, maxLength: 64, description: 'A destination no longer spooled by this gateway' })
      }, { additionalProperties: false }),
      response: { 200: Type.Object({ purged: Type.Integer() }, { description: 'How many were deleted' }), ...problemResponses }
    }
  }, async request => {
    const spool = spoolOf()
    return { purged: await spool.purgeWaiting(request.body.destination, request.adminTenants) }
  })
}
