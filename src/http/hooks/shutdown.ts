import type { FastifyInstance } from 'fastify'
import { problem } from '../../errors.js'
import { sendProblem } from '../problems/index.js'

/**
 * Shutdown as Kubernetes needs it: `drain()` turns readiness to 503 while requests are still
 * served; once the server closes, requests still arriving on open connections are answered
 * 503 with Retry-After and the connection closed.
 */
export function shutdownState (app: FastifyInstance): { draining: () => boolean, drain: () => void } {
  let draining = false
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async (request, reply) => {
    if (!closing) return
    reply.header('connection', 'close')
    return sendProblem(reply, problem('EVG_SHUTTING_DOWN', 'the gateway is shutting down; retry on another instance'), 1)
  })
  return { draining: () => draining || closing, drain: () => { draining = true } }
}
