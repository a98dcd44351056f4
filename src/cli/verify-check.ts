import { isDeepStrictEqual } from 'node:util'
import type { ProfileName } from '../envelopes/index.js'
import { ENVELOPE_FIELDS } from './envelope-fields.js'
import type { Received } from './verify-types.js'

export interface Sent {
  id: string
  type: string
  tenant: string
  correlationId: string
  source: string
  data: Record<string, unknown>
}

/**
 * The envelope against what was sent, in the destination's profile: id, type, source and
 * correlation id where the profile has them, the tenant in the body or else in the transport,
 * a time, and the data as sent. Problems never quote the data: it may be a transcript.
 */
export function checkEnvelope (profile: ProfileName, received: Received, sent: Sent): { problems: string[], checked: string[] } {
  const fields = ENVELOPE_FIELDS[profile]
  const { envelope } = received
  const problems = [...received.problems]
  const checked: string[] = []
  const expect = (label: string, actual: unknown, want: unknown) => {
    checked.push(label)
    if (actual !== want) problems.push(`${label} is ${JSON.stringify(actual)}, expected ${JSON.stringify(want)}`)
  }
  expect(fields.id, envelope[fields.id], sent.id)
  expect(fields.type, envelope[fields.type], sent.type)
  if (fields.source !== undefined) expect(fields.source, envelope[fields.source], sent.source)
  if (fields.tenant !== undefined) expect(fields.tenant, envelope[fields.tenant], sent.tenant)
  else if (received.transportTenant !== undefined) expect(`tenant (${received.transportTenant.where})`, received.transportTenant.value, sent.tenant)
  if (fields.correlation !== undefined) expect(fields.correlation, envelope[fields.correlation], sent.correlationId)
  const time = envelope[fields.time]
  checked.push(fields.time)
  if (typeof time !== 'string' || Number.isNaN(Date.parse(time))) problems.push(`${fields.time} is missing or not a time`)
  checked.push(fields.data)
  if (!isDeepStrictEqual(envelope[fields.data], sent.data)) problems.push(`${fields.data} is not the data that was sent`)
  return { problems, checked }
}
