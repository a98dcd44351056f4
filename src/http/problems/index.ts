import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ERRORS, GatewayError, PROBLEM_CONTENT_TYPE, problem, type ErrorCode, type Problem } from '../../errors.js'
import { HEADERS } from '../context/headers.js'
import { validationDetails } from '../../validation/index.js'
import { addLogFields } from '../hooks/access-log.js'

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'EVG_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'EVG_UNSUPPORTED_MEDIA',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'EVG_VALIDATION',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'EVG_VALIDATION',
  FST_ERR_CTP_INVALID_TYPE: 'EVG_UNSUPPORTED_MEDIA',
  FST_ERR_BAD_URL: 'EVG_NOT_FOUND',
  FST_ERR_ASYNC_CONSTRAINT: 'EVG_VALIDATION'
}

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'EVG_VALIDATION',
  401: 'EVG_UNAUTHORIZED',
  403: 'EVG_FORBIDDEN',
  404: 'EVG_NOT_FOUND',
  413: 'EVG_TOO_LARGE',
  415: 'EVG_UNSUPPORTED_MEDIA',
  429: 'EVG_RATE_LIMITED',
  503: 'EVG_OVERLOADED'
}

/** What Fastify's errors carry (validation, status, code), read from anything thrown; none for a string. */
export function fastifyFields (error: unknown): Partial<FastifyError> {
  return typeof error === 'object' && error !== null ? error : {}
}

/** Any error as a problem: ours as they are, Fastify's by code, the unexpected as EVG_INTERNAL. */
export function toProblem (error: unknown): { problem: Problem, retryAfter?: number } {
  if (error instanceof GatewayError) {
    return { problem: error.toProblem(), ...(error.retryAfter === undefined ? {} : { retryAfter: error.retryAfter }) }
  }
  const fe = fastifyFields(error)
  if (fe.validation !== undefined) {
    const where = fe.validationContext ?? 'body'
    return { problem: problem('EVG_VALIDATION', `the ${where} is not valid`, validationDetails(fe.validation)) }
  }
  const byStatus = fe.statusCode !== undefined && fe.statusCode < 500 ? BY_STATUS[fe.statusCode] ?? 'EVG_VALIDATION' : undefined
  const mapped = (fe.code ? FASTIFY_CODES[fe.code] : undefined) ?? byStatus
  if (mapped !== undefined) return { problem: problem(mapped, fe.message) }
  return { problem: problem('EVG_INTERNAL', 'unexpected error; it was logged') }
}

/**
 * The one place a refused event is counted (gateway_events_rejected_total): every problem answer
 * of a route that publishes, or of a POST naming a type that does not exist; a batch's refused
 * events one by one, with their own type.
 */
export function countRejection (
  request: FastifyRequest,
  code: ErrorCode,
  type = request.routeOptions.config?.eventType ?? 'unknown'
): void {
  request.server.metrics.rejected.inc({ type, code })
}

/** Whether a problem answer refuses events: a publishing route's, or a POST to an unknown type. */
function refusesEvents (request: FastifyRequest): boolean {
  if (request.routeOptions.config?.publishes === true) return true
  return request.is404 && request.method === 'POST' && request.url.startsWith('/v1/events/')
}

/**
 * Answers with a problem. `eventsCounted`: the batch's answer when none of its events was taken,
 * each of them already counted with its type.
 */
export function sendProblem (reply: FastifyReply, p: Problem, retryAfter?: number, eventsCounted = false): FastifyReply {
  const request = reply.request
  if (!eventsCounted && refusesEvents(request)) countRejection(request, p.code)
  addLogFields(request, { code: p.code, ...(typeof p.reason === 'string' ? { reason: p.reason } : {}) })
  if (retryAfter !== undefined) reply.header(HEADERS.retryAfter, String(retryAfter))
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(p)
}

async function problemsPlugin (app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error, request, reply) => {
    const { problem: p, retryAfter } = toProblem(error)
    if (p.code === 'EVG_INTERNAL') request.log.error({ err: error }, 'unexpected error')
    if (p.code === 'EVG_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer')
    return sendProblem(reply, { ...p, instance: request.url }, retryAfter)
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    const p = request.method === 'POST' && path.startsWith('/v1/events/')
      ? problem('EVG_UNKNOWN_TYPE', `no event type '${decodeSafe(path.slice('/v1/events/'.length))}'; GET /v1/event-types lists them`)
      : problem('EVG_NOT_FOUND', `${request.method} ${path} does not exist`)
    return sendProblem(reply, p)
  })
}

/** Every refusal a problem, refused events counted (gateway_events_rejected_total, in app.metrics). */
export const problems = fp(problemsPlugin, { name: 'evg-problems', decorators: { fastify: ['metrics'] } })

function decodeSafe (s: string): string {
  try {
    return decodeURIComponent(s).slice(0, 128)
  } catch {
    return s.slice(0, 128)
  }
}

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (oversized headers, garbage):
 * answered as problems too, and the socket closed; the process is not affected.
 */
const CLIENT_ERRORS: Record<string, [ErrorCode, string, string]> = {
  HPE_HEADER_OVERFLOW: [
    'EVG_HEADERS_TOO_LARGE',
    'Request Header Fields Too Large',
    'the request headers are larger than the server accepts'
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [
    'EVG_TIMEOUT',
    'Request Timeout',
    'the request was not complete in time (HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS)'
  ]
}

export function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const [code, reason, detail] = CLIENT_ERRORS[err.code ?? ''] ?? ['EVG_VALIDATION', 'Bad Request', 'malformed HTTP request']
  const body = JSON.stringify(problem(code, detail))
  socket.end(`HTTP/1.1 ${ERRORS[code].status} ${reason}\r\n` +
    `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}

/** Errors Fastify meets before routing (a URL it cannot decode, a path parameter too long), as problems. */
export function frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const p = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? problem('EVG_NOT_FOUND', 'no such resource (a path segment is longer than any name the gateway knows)')
    : problem('EVG_VALIDATION', 'the URL is not valid (bad percent-encoding)')
  void sendProblem(reply, p)
}
