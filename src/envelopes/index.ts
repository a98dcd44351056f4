import { cloudevents } from './cloudevents.js'
import { draftGenie } from './draft-genie.js'
import { ocelot } from './ocelot.js'
import type { EnvelopeProfile } from './profile.js'

export type { EnvelopeOptions, EnvelopeProfile } from './profile.js'

/** Every envelope profile a destination may name, by name. */
export const PROFILES = {
  cloudevents,
  ocelot,
  'draft-genie': draftGenie
} as const satisfies Record<string, EnvelopeProfile>

export type ProfileName = keyof typeof PROFILES

export const PROFILE_NAMES = Object.keys(PROFILES) as ProfileName[]

export const DEFAULT_PROFILE: ProfileName = 'cloudevents'
