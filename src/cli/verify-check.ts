import { isDeepStrictEqual } from 'node:util'
import type { Placement, WireFormat } from '../envelopes/index.js'
import type { GatewayEvent } from '../envelopes/event.js'
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
  const { envelope } = received
  const problems = [...received.problems]
  const readBack = (field: string): unknown => {
    const at = format.placements.find((p): p is Extract<Placement, { field: string }> => 'field' in p && p.field === field)
    return at === undefined ? undefined : valueAt(envelope, at.path)
  }
  const time = readBack('time')
  const placesTime = format.placements.some(p => 'field' in p && p.field === 'time')
  if (placesTime && (typeof time !== 'string' || Number.isNaN(Date.parse(time)))) problems.push('the time is missing or not a time')
  const traceparent = readBack('traceparent')
  const event: GatewayEvent = { ...sent, ...(typeof time === 'string' ? { time } : {}) }
  const expected: unknown = JSON.parse(format.encode(event, typeof traceparent === 'string' ? traceparent : undefined))
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

function valueAt (value: unknown, path: readonly (string | number)[]): unknown {
  let at = value
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined
    at = Reflect.get(at, key)
  }
  return at
}
