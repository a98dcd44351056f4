import { ROOT_CONTEXT, trace, type Context, type SpanContext } from '@opentelemetry/api'
import { TraceState, parseTraceParent } from '@opentelemetry/core'

// W3C Trace Context in and out, with the OpenTelemetry API and core: the request path never loads the SDK.

// version-traceid-parentid-flags (55 characters), then, in a version above 00 only, whatever that
// version adds after a '-'. Lower-case hex only, and all-zero ids are invalid, as the specification says.
const TRACEPARENT = /^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?:-.*)?$/
const FIELDS_LENGTH = 55

/**
 * A caller's traceparent as the gateway reads and passes it on, or undefined when it is not valid.
 * Version 00 is taken as it came, and only with its four fields. A later version is read by its
 * first fields, whatever follows them after a '-' (W3C Trace Context, "Versioning of
 * traceparent"); version ff is invalid. The gateway does not know a later version, so, as the
 * specification asks of such a vendor, it goes on in its own, 00: the trace and parent ids with the
 * sampled flag alone (the other bits are the later version's), not the fields it cannot read.
 */
export function readTraceparent (value: string): string | undefined {
  if (!TRACEPARENT.test(value)) return undefined
  const version = value.slice(0, 2)
  if (version === '00') return value.length === FIELDS_LENGTH ? value : undefined
  if (version === 'ff') return undefined
  const sampled = Number.parseInt(value.slice(FIELDS_LENGTH - 2, FIELDS_LENGTH), 16) & 1
  return `00${value.slice(2, FIELDS_LENGTH - 2)}0${sampled}`
}

/**
 * A caller's tracestate as the gateway passes it on (several headers are one list, Node joins
 * them): OpenTelemetry's parse, which drops members that are not key=value as W3C Trace Context
 * defines them, keeps at most 32, and drops a value over 512 characters whole; undefined when
 * nothing is left.
 */
export function readTracestate (value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  const state = new TraceState(Array.isArray(value) ? value.join(',') : value).serialize()
  return state === '' ? undefined : state
}

/**
 * The context a server span starts in: the caller's, from a traceparent already read
 * (readTraceparent: version 00) and its tracestate, which the gateway's spans then carry on.
 */
export function callerContext (traceparent: string | undefined, tracestate?: string): Context {
  const parent = traceparent === undefined ? null : parseTraceParent(traceparent)
  if (parent === null) return ROOT_CONTEXT
  return trace.setSpanContext(ROOT_CONTEXT, {
    ...parent,
    isRemote: true,
    ...(tracestate === undefined ? {} : { traceState: new TraceState(tracestate) })
  })
}

/** A span's context as a W3C traceparent (version 00), as a consumer reads it. */
export function toTraceparent (context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.traceFlags.toString(16).padStart(2, '0')}`
}
