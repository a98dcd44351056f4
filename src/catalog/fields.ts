import { Type } from 'typebox'

// Field shapes shared by several domains, so one rule means one thing everywhere.

/** An opaque identifier from another system. */
export const Id = (description: string) => Type.String({ minLength: 1, maxLength: 128, description })

export const Uuid = (description: string) => Type.String({ format: 'uuid', description })

/** E.164: a plus, a non-zero country digit, at most 15 digits in all. */
export const E164 = (description: string) => Type.String({ pattern: '^\\+[1-9][0-9]{1,14}$', description })

/** BCP 47 language tag, e.g. `en`, `en-US`, `zh-Hant-TW`. */
export const Bcp47 = (description: string) => Type.String({ pattern: '^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$', maxLength: 35, description })

export const Probability = (description: string) => Type.Number({ minimum: 0, maximum: 1, description })

export const Count = (description: string) => Type.Integer({ minimum: 0, description })

export const Text = (description: string, maxLength = 10000) => Type.String({ maxLength, description })

/** Lower-case word usable as one segment of a routing key. */
export const Segment = (description: string) => Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$', description })

/** A free-form JSON object (event_data, operation_details). */
export const Details = (description: string) => Type.Record(Type.String(), Type.Unknown(), { description })

export const Strict = { additionalProperties: false } as const
