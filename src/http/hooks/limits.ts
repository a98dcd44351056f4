import { readFileSync } from 'node:fs'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { problem } from '../../errors.js'
import { sendProblem } from '../problems/index.js'
import { contentCodings } from './content-encoding.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Body bytes this request holds against the in-flight budget, released when it is answered. */
    reservedBytes: number
  }
}

/** The soft open-files limit, from /proc (Linux); undefined elsewhere. */
export function openFilesLimit (): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return line === null || line[1] === 'unlimited' ? undefined : Number(line[1])
  } catch {
    return undefined
  }
}

/** Descriptors always kept for the process itself: brokers, the database and its writer, the log, Node. */
export const RESERVED_FILES = 128

/**
 * Connections at most: the configured number, else 80% of the open-files limit with at least
 * RESERVED_FILES left free, so the process never meets EMFILE (at which point even reading its
 * own memory use fails, and load shedding with it).
 */
export function maxConnections (configured: number, limit = openFilesLimit()): number {
  if (configured > 0) return configured
  return limit === undefined ? 10000 : Math.max(8, Math.min(Math.floor(limit * 0.8), limit - RESERVED_FILES))
}

/**
 * A budget of request body bytes in flight: a request that would exceed it is answered 503 at
 * once, before its body is read, so no shape or number of requests can grow the heap past a
 * bounded multiple of the budget. Chunked and compressed bodies count as the largest body allowed
 * (a compressed one may decode to anything up to the limit).
 */
async function bodiesInFlightPlugin (app: FastifyInstance, opts: { budget: number, bodyLimit: number }): Promise<void> {
  let inFlight = 0
  app.decorateRequest('reservedBytes', 0)
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST' && request.method !== 'PUT' && request.method !== 'PATCH') return
    const declared = Number(request.headers['content-length'])
    const sized = Number.isFinite(declared) && declared >= 0 && contentCodings(request.headers).length === 0
    const bytes = sized ? Math.min(declared, opts.bodyLimit) : opts.bodyLimit
    if (inFlight + bytes > opts.budget) {
      // The body is not read: the connection cannot carry another request after this answer.
      reply.header('connection', 'close')
      return sendProblem(reply, problem('EVG_OVERLOADED', 'too many request bodies are in flight; retry shortly'), 1)
    }
    inFlight += bytes
    request.reservedBytes = bytes
  })
  const release = async (request: FastifyRequest) => {
    inFlight -= request.reservedBytes
    request.reservedBytes = 0
  }
  app.addHook('onResponse', release)
  app.addHook('onRequestAbort', release)
}

/** After the server span starts, so that a refused request has its span too. */
export const bodiesInFlight = fp(bodiesInFlightPlugin, {
  name: 'evg-bodies-in-flight',
  dependencies: ['evg-problems', 'evg-request-tracing']
})
