import { Type } from 'typebox'
import { Count, Strict, Text, Uuid } from './fields.js'
import { defineEntries } from './types.js'

// Seed 000: survey outcomes published to an SQS FIFO queue, deduplicated per call.
const call = {
  campaign_id: Uuid('Campaign the call belongs to'),
  contact_id: Uuid('Contact who was called'),
  call_id: Uuid('The call; duplicates of the same outcome for one call are dropped')
}
const ids = {
  campaign_id: '0f8d3c2e-5b7a-4c1d-9e2f-3a4b5c6d7e8f',
  contact_id: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  call_id: 'b3f1c7a2-9d4e-4f6a-8b2c-1e5d7f9a0c3b'
}

export const SurveyCompletedSchema = Type.Object({
  ...call,
  answers: Type.Array(Text('One answer, in question order', 2000), {
    minItems: 1,
    maxItems: 100,
    description: 'Answers in question order'
  }),
  confidence_scores: Type.Optional(Type.Array(Type.Number({ minimum: 0, maximum: 1 }), {
    maxItems: 100,
    description: 'Recognition confidence (0..1) per answer, same order as answers'
  }))
}, { ...Strict, examples: [{ ...ids, answers: ['8', 'Great service', '9'], confidence_scores: [0.97, 0.88, 0.95] }] })

export const SurveyRefusedSchema = Type.Object({
  ...call,
  refusal_reason: Type.Optional(Text('Why the contact refused, as said or classified', 500))
}, { ...Strict, examples: [{ ...ids, refusal_reason: 'not_interested' }] })

export const SurveyNotReachedSchema = Type.Object({
  ...call,
  total_attempts: Type.Integer({ minimum: 1, maximum: 1000, description: 'Call attempts made before giving up' }),
  last_outcome: Type.String({
    pattern: '^[a-z][a-z_]{0,63}$',
    description: 'Outcome of the last attempt, e.g. no_answer, busy, voicemail'
  }),
  max_attempts: Type.Optional(Count('The campaign\'s attempt limit'))
}, { ...Strict, examples: [{ ...ids, total_attempts: 3, last_outcome: 'no_answer', max_attempts: 3 }] })

export const survey = defineEntries('survey', [
  {
    type: 'survey.completed',
    description: 'A survey call finished with answers.',
    schema: SurveyCompletedSchema,
    routingKey: 'survey.completed',
    dedupeKey: 'call_id',
    sensitive: ['answers']
  },
  {
    type: 'survey.refused',
    description: 'The contact refused to take part.',
    schema: SurveyRefusedSchema,
    routingKey: 'survey.refused',
    dedupeKey: 'call_id',
    sensitive: ['refusal_reason']
  },
  {
    type: 'survey.not_reached',
    description: 'The contact could not be reached within the attempt limit.',
    schema: SurveyNotReachedSchema,
    routingKey: 'survey.not_reached',
    dedupeKey: 'call_id'
  }
])
