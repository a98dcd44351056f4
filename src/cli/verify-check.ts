import { isDeepStrictEqual } from 'node:util'
import { protectedEvent, type Placement, type WireFormat } from '../envelopes/index.js'
import type { GatewayEvent } from '../envelopes/event.js'
import { ENCRYPTED_PREFIX } from '../protection/values.js'
import { isObject } from './common.js'
import type { Received } from './verify-types.js'

/**
 * The envelope against what was sent: the destination's wire format rendered for the test event
 * (its time and trace context read back from the envelope, where the format puts them) must be
 * what arrived, field by field; the tenant, when the envelope has none, is checked in the
 * transport. Problems never quote what came from the data: it may be a transcript.
 */
export function checkEnvelope (
  format: WireFormat, received: Received, sent: GatewayEvent
): { problems: string[], checked: string[] } {
  const problems = [...received.problems]
  const readBack = (field: string): unknown => {
    const at = format.placements.find((p): p is Extract<Placement, { field: string }> => 'field' in p && p.field === field)
    return at === undefined ? undefined : valueAt(received.envelope, at.path)
  }
  const time = readBack('time')
  const placesTime = format.placements.some(p => 'field' in p && p.field === 'time')
  if (placesTime && (typeof time !== 'string' || Number.isNaN(Date.parse(time)))) problems.push('the time is missing or not a time')
  const traceparent = readBack('traceparent')
  const timed: GatewayEvent = { ...sent, ...(typeof time === 'string' ? { time } : {}) }
  // Protected as the destination protects it; encrypted values differ at every encryption (a
  // fresh IV), so both sides show them as their shape only.
  const event = protectedEvent(format, timed, false)
  const encrypts = format.protection?.rules.some(r => r.action === 'encrypt') === true
  const expected = shapeOfEncrypted(JSON.parse(format.encode(event, typeof traceparent === 'string' ? traceparent : undefined)), encrypts)
  const envelope = shapeOfEncrypted(received.envelope, encrypts)
  const readsData = (p: Placement) => 'field' in p ? p.field.startsWith('data') : 'spread' in p || p.text.some(f => f.startsWith('data'))
  const fromData = new Set(format.placements.filter(readsData).map(p => String(p.path[0] ?? '')))
  const checked: string[] = []
  if (isObject(expected) && isObject(envelope)) {
    const missing: string[] = []
    const extra: string[] = []
    for (const key of new Set([...Object.keys(expected), ...Object.keys(envelope)])) {
      checked.push(key)
      if (isDeepStrictEqual(envelope[key], expected[key])) continue
      if (!(key in envelope)) missing.push(key)
      else if (!(key in expected)) extra.push(key)
      else if (fromData.has(key) || fromData.has('')) problems.push(`${key} is not what was sent`)
      else problems.push(`${key} is ${JSON.stringify(envelope[key])}, expected ${JSON.stringify(expected[key])}`)
    }
    if (missing.length > 0) problems.push(`missing ${missing.join(', ')}`)
    if (extra.length > 0) problems.push(`${extra.join(', ')} not of this format`)
  } else {
    checked.push('(the envelope)')
    if (!isDeepStrictEqual(envelope, expected)) problems.push('the envelope is not what was sent')
  }
  if (!format.placements.some(p => 'field' in p && p.field === 'tenant') && received.transportTenant !== undefined) {
    checked.push(`tenant (${received.transportTenant.where})`)
    const { where, value } = received.transportTenant
    if (value !== sent.tenantId) problems.push(`tenant (${where}) is ${JSON.stringify(value)}, expected ${JSON.stringify(sent.tenantId)}`)
  }
  return { problems, checked }
}

/** `value` with every encrypted value (evg:v1:…) written as `evg:v1:…`, when `encrypts`. */
function shapeOfEncrypted (value: unknown, encrypts: boolean): unknown {
  if (!encrypts) return value
  if (typeof value === 'string') return value.startsWith(ENCRYPTED_PREFIX) ? `${ENCRYPTED_PREFIX}…` : value
  if (Array.isArray(value)) return value.map(v => shapeOfEncrypted(v, true))
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shapeOfEncrypted(v, true)]))
  return value
}

function valueAt (value: unknown, path: readonly (string | number)[]): unknown {
  let at = value
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined
    at = Reflect.get(at, key)
  }
  return at
}
