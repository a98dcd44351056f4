import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { problem } from '../../errors.js'
import { sendProblem } from '../problems/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shutdown has begun: readiness answers 503 while requests are still served. */
    drain: () => void
    /** Whether readiness says draining: after drain(), or once the server is closing. */
    draining: () => boolean
  }
}

/**
 * Shutdown as Kubernetes needs it: `drain()` turns readiness to 503 while requests are still
 * served; once the server closes, requests still arriving on open connections are answered
 * 503 with Retry-After and the connection closed.
 */
async function shutdownPlugin (app: FastifyInstance): Promise<void> {
  let draining = false
  let closing = false
  app.decorate('drain', () => { draining = true })
  app.decorate('draining', () => draining || closing)
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async (request, reply) => {
    if (!closing) return
    reply.header('connection', 'close')
    return sendProblem(reply, problem('EVG_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance'), 1)
  })
}

/** After the server span starts, so that a refused request has its span too. */
export const shutdown = fp(shutdownPlugin, { name: 'evg-shutdown', dependencies: ['evg-problems', 'evg-request-tracing'] })
