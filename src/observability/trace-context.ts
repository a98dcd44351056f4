import { ROOT_CONTEXT, trace, type Context, type SpanContext } from '@opentelemetry/api'
import { parseTraceParent } from '@opentelemetry/core'

// W3C Trace Context in and out, with the OpenTelemetry API and core: the request path never loads the SDK.

/** The context a server span starts in: the caller's, from a traceparent already validated. */
export function callerContext (traceparent: string | undefined): Context {
  const parent = traceparent === undefined ? null : parseTraceParent(traceparent)
  return parent === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true })
}

/** A span's context as a W3C traceparent (version 00), as a consumer reads it. */
export function toTraceparent (context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags.toString(16).padStart(2, '0')}`
}
