import { STATUS_CODES } from 'node:http'
import { DiagLogLevel, diag, type Tracer, type TracerProvider } from '@opentelemetry/api'
import {
  getBooleanFromEnv,
  getStringFromEnv,
  getStringListFromEnv,
  loggingErrorHandler,
  setGlobalErrorHandler
} from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError, codeOf } from '../errors.js'

/** The name of the gateway's tracer, and its service name unless OTEL_SERVICE_NAME says otherwise. */
export const SERVICE_NAME = 'event-gateway'

/** How long closing waits for the last spans to reach the collector before going anyway. */
export const TRACE_FLUSH_TIMEOUT_MS = 2000

export interface Tracing {
  /** Undefined when tracing is off: nothing on the request path touches OpenTelemetry then. */
  readonly tracer: Tracer | undefined
  /** Exports the spans still buffered, within TRACE_FLUSH_TIMEOUT_MS. */
  shutdown (): Promise<void>
}

const OFF: Tracing = { tracer: undefined, shutdown: async () => {} }

/**
 * How often one kind of the SDK's complaints may reach the log: a collector that is down fails
 * every export, one every OTEL_BSP_SCHEDULE_DELAY (5 s) under traffic.
 */
export const OTEL_LOG_INTERVAL_MS = 60_000

/** The longest text of the SDK's that a log line carries. */
const MAX_TEXT = 160

/** Distinct complaints throttled apart; any more share one window, so that varied ones cannot flood the log either. */
const MAX_KINDS = 32

/**
 * A text of the SDK's as a bounded line. Quoted text is dropped: the SDK quotes what it could not
 * read, such as a collector's answer, and a collector (or a proxy) may echo the export's request
 * headers in it, OTEL_EXPORTER_OTLP_HEADERS' credentials with them.
 */
export function boundedText (text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/"[^"]*(?:"|$)/g, '"…"').trim()
  return line.length <= MAX_TEXT ? line : `${line.slice(0, MAX_TEXT - 1)}…`
}

/**
 * Why an export failed, in a few words. An HTTP refusal is its status with the standard reason
 * phrase, never the collector's own phrase or body (the SDK keeps the body on the error); a
 * network failure is its code (ECONNREFUSED); the SDK's own errors ("Request timed out") are their message.
 */
export function exportFailureReason (thrown: unknown): string {
  const code = codeOf(thrown)
  if (typeof code === 'number') return `HTTP ${code}${STATUS_CODES[code] === undefined ? '' : ` ${STATUS_CODES[code]}`}`
  if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,39}$/.test(code)) return code
  return boundedText(thrown instanceof Error ? thrown.message || thrown.name : String(thrown))
}

interface Line { level: 'error' | 'warn', msg: string, fields?: Record<string, string> }

/**
 * At most one line per kind and interval: the first at once; what comes within the interval is
 * counted, and said at its end as one line (the last one, with `suppressed`: how many it stands
 * for), which opens another interval. close() says what is still counted.
 */
export class LogThrottle {
  readonly #windows = new Map<string, { last: Line, suppressed: number, timer: NodeJS.Timeout }>()
  readonly #log: FastifyBaseLogger
  readonly #intervalMs: number

  constructor (log: FastifyBaseLogger, intervalMs = OTEL_LOG_INTERVAL_MS) {
    this.#log = log
    this.#intervalMs = intervalMs
  }

  report (kind: string, line: Line): void {
    const key = this.#windows.has(kind) || this.#windows.size < MAX_KINDS ? kind : '(other)'
    const open = this.#windows.get(key)
    if (open !== undefined) {
      open.last = line
      open.suppressed++
      return
    }
    this.#write(line, 0)
    this.#open(key, line)
  }

  close (): void {
    for (const { last, suppressed, timer } of this.#windows.values()) {
      clearTimeout(timer)
      if (suppressed > 0) this.#write(last, suppressed)
    }
    this.#windows.clear()
  }

  #open (key: string, last: Line): void {
    const timer = setTimeout(() => {
      const window = this.#windows.get(key)
      this.#windows.delete(key)
      if (window === undefined || window.suppressed === 0) return
      this.#write(window.last, window.suppressed)
      this.#open(key, window.last)
    }, this.#intervalMs).unref()
    this.#windows.set(key, { last, suppressed: 0, timer })
  }

  #write ({ level, msg, fields }: Line, suppressed: number): void {
    const base = { component: 'opentelemetry', ...fields }
    if (suppressed === 0) {
      this.#log[level](base, msg)
    } else {
      this.#log[level]({ ...base, suppressed }, `${msg} (${suppressed} times since the last line of its kind)`)
    }
  }
}

/** Tracing with a provider the caller owns (tests: an in-memory exporter); it is not shut down here. */
export function tracingWith (provider: TracerProvider): Tracing {
  return { tracer: provider.getTracer(SERVICE_NAME), shutdown: async () => {} }
}

/**
 * Spans are exported only when someone asked for them: an OTLP endpoint, or
 * OTEL_TRACES_EXPORTER=otlp (to the SDK's default, localhost:4318). OTEL_SDK_DISABLED=true and
 * OTEL_TRACES_EXPORTER=none win over both. What cannot work stops the start, as other bad
 * configuration does; values are never echoed (OTLP headers carry credentials).
 */
function otlpWanted (log: FastifyBaseLogger): boolean {
  if (getBooleanFromEnv('OTEL_SDK_DISABLED')) return false
  const exporters = getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? []
  if (exporters.some(e => e !== 'otlp' && e !== 'none')) {
    throw new ConfigError('OTEL_TRACES_EXPORTER: the gateway exports spans with otlp only (or none)')
  }
  if (exporters.includes('none')) return false
  const endpoints = ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'].flatMap(name => {
    const url = getStringFromEnv(name)
    return url === undefined ? [] : [{ name, url }]
  })
  if (exporters.length === 0 && endpoints.length === 0) return false
  for (const { name, url } of endpoints) {
    if (!/^https?:\/\//.test(url) || !URL.canParse(url)) {
      throw new ConfigError(`${name}: must be an http:// or https:// URL (http://collector:4318)`)
    }
  }
  // The exporter speaks OTLP/HTTP with JSON bodies (the protobuf one is not a dependency). gRPC
  // would not work at all (another port, another protocol); protobuf is what the spec defaults to,
  // and the Collector takes JSON as well, so that is only worth saying.
  const protocol = getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL')
  if (protocol === 'grpc') {
    throw new ConfigError('OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not available; ' +
      'the gateway exports spans over OTLP/HTTP (http/json, port 4318)')
  }
  if (protocol !== undefined && protocol !== 'http/json') {
    log.warn({ component: 'opentelemetry' }, 'spans are exported as http/json: the only OTLP protocol the gateway has')
  }
  return true
}

/**
 * Tracing as the standard OTEL_* variables configure it, read by the SDK's own helpers: the
 * sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on), the batch processor (OTEL_BSP_*),
 * the exporter (OTEL_EXPORTER_OTLP_*), the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
 * The SDK's own complaints (an unknown sampler, a collector that does not answer) go to our log,
 * as bounded lines, each kind at most once per OTEL_LOG_INTERVAL_MS (LogThrottle).
 */
export function tracingFromEnv (log: FastifyBaseLogger): Tracing {
  const throttle = new LogThrottle(log)
  // Only the SDK's text and its plain values: an Error or a buffer among the arguments may be a
  // collector's answer. Numbers are masked in the kind so that "Dropped 3 spans" and "Dropped 7
  // spans" are throttled as one.
  const forward = (level: 'error' | 'warn') => (message: string, ...args: unknown[]) => {
    const plain = args.filter(a => typeof a === 'string' || typeof a === 'number' || typeof a === 'boolean')
    const msg = boundedText([message, ...plain].join(' '))
    throttle.report(msg.replace(/[0-9]+/g, '#'), { level, msg })
  }
  const noop = () => {}
  diag.setLogger(
    { error: forward('error'), warn: forward('warn'), info: noop, debug: noop, verbose: noop },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true }
  )
  let wanted = false
  try {
    wanted = otlpWanted(log)
  } finally {
    if (!wanted) {
      diag.disable()
      throttle.close()
    }
  }
  if (!wanted) return OFF
  // A failed export reaches the SDK's global error handler, whose default logs the whole error:
  // the collector's answer included (OTLPExporterError.data), and its stack.
  setGlobalErrorHandler(err => {
    const reason = exportFailureReason(err)
    throttle.report('export', { level: 'error', msg: `spans not exported: ${reason}`, fields: { reason } })
  })
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: SERVICE_NAME }))
    .merge(detectResources({ detectors: [envDetector] }))
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] })
  return {
    tracer: provider.getTracer(SERVICE_NAME),
    shutdown: async () => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<void>(resolve => { timer = setTimeout(resolve, TRACE_FLUSH_TIMEOUT_MS).unref() })
      let failure: string | undefined
      try {
        await Promise.race([provider.shutdown(), timeout])
      } catch (err) {
        failure = exportFailureReason(err)
      } finally {
        clearTimeout(timer)
        throttle.close()
        if (failure !== undefined) {
          log.warn({ component: 'opentelemetry', reason: failure }, `could not export the last spans: ${failure}`)
        }
        setGlobalErrorHandler(loggingErrorHandler())
        diag.disable()
      }
    }
  }
}
