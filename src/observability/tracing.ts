import { DiagLogLevel, diag, type Tracer, type TracerProvider } from '@opentelemetry/api'
import { getBooleanFromEnv, getStringFromEnv, getStringListFromEnv } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError, messageOf } from '../errors.js'

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
 * The SDK's own complaints (an unknown sampler, a collector that does not answer) go to our log.
 */
export function tracingFromEnv (log: FastifyBaseLogger): Tracing {
  const forward = (level: 'error' | 'warn') => (message: string, ...args: unknown[]) => {
    log[level]({ component: 'opentelemetry' }, [message, ...args.map(String)].join(' '))
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
    if (!wanted) diag.disable()
  }
  if (!wanted) return OFF
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: SERVICE_NAME }))
    .merge(detectResources({ detectors: [envDetector] }))
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] })
  return {
    tracer: provider.getTracer(SERVICE_NAME),
    shutdown: async () => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<void>(resolve => { timer = setTimeout(resolve, TRACE_FLUSH_TIMEOUT_MS).unref() })
      try {
        await Promise.race([provider.shutdown(), timeout])
      } catch (err) {
        log.warn({ component: 'opentelemetry', err: messageOf(err) }, 'could not export the last spans')
      } finally {
        clearTimeout(timer)
        diag.disable()
      }
    }
  }
}
