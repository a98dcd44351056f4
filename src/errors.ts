// Every EVG_* error the gateway answers with. docs/errors.md's table is checked against this
// module by test/repository/errors.test.ts, so clients and dashboards can rely on the list.

export interface ErrorDefinition {
  status: number
  title: string
  /** Whether the same request may succeed when sent again later. */
  retryable: boolean
}

export const ERRORS = {
  EVG_VALIDATION: { status: 400, title: 'The request is not valid', retryable: false },
  EVG_BAD_CONTEXT: { status: 400, title: 'The request context headers are not valid', retryable: false },
  EVG_UNAUTHORIZED: { status: 401, title: 'An API key is required', retryable: false },
  EVG_FORBIDDEN: { status: 403, title: 'The API key may not do this', retryable: false },
  EVG_NOT_FOUND: { status: 404, title: 'No such resource', retryable: false },
  EVG_UNKNOWN_TYPE: { status: 404, title: 'Unknown event type', retryable: false },
  EVG_TIMEOUT: { status: 408, title: 'The request was not received in time', retryable: true },
  EVG_IDEMPOTENCY_CONFLICT: { status: 409, title: 'Idempotency key reused with a different request', retryable: false },
  EVG_IDEMPOTENCY_IN_PROGRESS: { status: 409, title: 'A request with this idempotency key is still being published', retryable: true },
  EVG_TOO_LARGE: { status: 413, title: 'The request is too large', retryable: false },
  EVG_UNSUPPORTED_MEDIA: { status: 415, title: 'Unsupported content type', retryable: false },
  EVG_HEADERS_TOO_LARGE: { status: 431, title: 'The request headers are too large', retryable: false },
  EVG_RATE_LIMITED: { status: 429, title: 'Too many requests', retryable: true },
  EVG_BROKER_REJECTED: { status: 502, title: 'The broker refused the event', retryable: false },
  EVG_BROKER_UNAVAILABLE: { status: 503, title: 'The broker cannot take the event now', retryable: true },
  EVG_OVERLOADED: { status: 503, title: 'The gateway is overloaded', retryable: true },
  EVG_STATE_UNAVAILABLE: { status: 503, title: 'The idempotency store cannot be reached', retryable: true },
  EVG_SPOOL_UNAVAILABLE: { status: 503, title: 'The outbox cannot store the event now', retryable: true },
  EVG_SHUTTING_DOWN: { status: 503, title: 'The gateway is shutting down', retryable: true },
  EVG_INTERNAL: { status: 500, title: 'Internal error', retryable: true }
} as const satisfies Record<string, ErrorDefinition>

export type ErrorCode = keyof typeof ERRORS

export interface FieldError {
  path: string
  message: string
}

/** RFC 9457 problem details, with our stable `code` and optional extensions. */
export interface Problem {
  type: string
  title: string
  status: number
  code: ErrorCode
  detail?: string
  instance?: string
  errors?: FieldError[]
  [extension: string]: unknown
}

/** A configuration the gateway cannot run with: entry points print it and exit 1. */
export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly retryable: boolean
  readonly extensions: Record<string, unknown>
  /** Seconds a client should wait before retrying, sent as Retry-After. */
  readonly retryAfter: number | undefined

  constructor (
    code: ErrorCode,
    detail?: string,
    options: { extensions?: Record<string, unknown>, retryAfter?: number, cause?: unknown } = {}
  ) {
    super(detail ?? ERRORS[code].title, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.status = ERRORS[code].status
    this.retryable = ERRORS[code].retryable
    this.extensions = options.extensions ?? {}
    this.retryAfter = options.retryAfter
  }

  toProblem (instance?: string): Problem {
    return problem(this.code, this.message, { ...this.extensions, ...(instance === undefined ? {} : { instance }) })
  }
}

export function problem (code: ErrorCode, detail?: string, extensions: Record<string, unknown> = {}): Problem {
  const def = ERRORS[code]
  return {
    type: `urn:event-gateway:error:${code}`,
    title: def.title,
    status: def.status,
    code,
    ...(detail === undefined ? {} : { detail }),
    ...extensions
  }
}

/**
 * What a `catch` caught, as an Error: JavaScript may throw anything, so a string or an object
 * thrown by a library becomes an Error carrying its text instead of being cast to one.
 */
export function asError (thrown: unknown): Error {
  if (thrown instanceof Error) return thrown
  return new Error(typeof thrown === 'string' ? thrown : String(thrown))
}

/** The message of what a `catch` caught. */
export function messageOf (thrown: unknown): string {
  return asError(thrown).message
}

/** The `code` property of what a `catch` caught (Node's `ENOENT`, PostgreSQL's SQLSTATE, a broker's reply code), if it has one. */
export function codeOf (thrown: unknown): string | number | undefined {
  if (typeof thrown !== 'object' || thrown === null || !('code' in thrown)) return undefined
  const { code } = thrown
  return typeof code === 'string' || typeof code === 'number' ? code : undefined
}
