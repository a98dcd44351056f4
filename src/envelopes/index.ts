export { DEFAULT_PROFILE, PROFILES, PROFILE_NAMES, dataSchemaUri, type Profile, type ProfileName } from './profiles.js'
export { compileWireFormat, protectedEvent, type EnvelopeOptions, type EnvelopeSpec, type WireFormat } from './wire-format.js'
export type { WireMessage } from './message.js'
export type { JsonTemplate, Placement } from './template.js'
