import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyRequest {
    /** Ids and outcomes for this request's access log line (addLogFields); never payload fields. */
    logFields: Record<string, unknown> | undefined
  }
}

/** Adds ids and outcomes to the request's access log line (and to its server span's attributes). */
export function addLogFields (request: FastifyRequest, fields: Record<string, unknown>): void {
  if (request.logFields === undefined) request.logFields = { ...fields }
  else Object.assign(request.logFields, fields)
}

/**
 * One line per request when it is answered, through the root logger with reqId first: the line a
 * child logger with reqId bound would write, without a child per request (server-options.ts makes
 * request.log lazily).
 */
async function accessLogPlugin (app: FastifyInstance): Promise<void> {
  app.decorateRequest('logFields', undefined)
  const log = app.log
  app.addHook('onResponse', (request, reply, done) => {
    log.info({
      reqId: request.id,
      method: request.method,
      url: request.url,
      statusCode: reply.statusCode,
      responseTime: reply.elapsedTime,
      ...request.logFields
    }, 'request completed')
    done()
  })
}

/** After the server span, whose end adds the trace id to the line. */
export const accessLog = fp(accessLogPlugin, { name: 'evg-access-log', dependencies: ['evg-request-tracing'] })
