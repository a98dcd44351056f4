import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** The `route` of requests no route matched: one value, so that scanners cannot grow the label set. */
export const UNMATCHED = 'unmatched'

/**
 * Rate, errors and duration per route: every answer, whatever its route, by route pattern (not
 * the URL, whose ids and typos are unbounded), method and status. Registered on the root so that
 * the not-found handler and every plugin's routes are measured alike.
 */
async function requestMetricsPlugin (app: FastifyInstance): Promise<void> {
  const metrics = app.metrics
  app.addHook('onResponse', async (request, reply) => {
    const labels = { route: request.routeOptions.url ?? UNMATCHED, method: request.method, status_code: String(reply.statusCode) }
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000)
  })
}

export const requestMetrics = fp(requestMetricsPlugin, { name: 'evg-request-metrics', decorators: { fastify: ['metrics'] } })
