import { Type } from 'typebox'
import { Bcp47, Count, E164, Id, Probability, Strict, Text } from './fields.js'
import { defineEntries } from './types.js'

// Seed 003: the voice module's call events on the platform topic exchange, routed `comms.<type>`.
const callId = Id('The call')
const callExample = 'call-7f3a9c'

export const CallOutcomes = ['completed', 'callback_requested', 'voicemail', 'failed'] as const

export const CallStartedSchema = Type.Object({
  call_id: callId,
  from_number: E164('Caller, E.164'),
  to_number: E164('Callee, E.164'),
  campaign_id: Type.Union([Id('Campaign the call belongs to'), Type.Null()], { description: 'Campaign, or null for an ad-hoc call' })
}, { ...Strict, examples: [{ call_id: callExample, from_number: '+420601123456', to_number: '+14155550123', campaign_id: 'campaign-42' }] })

export const CallEndedSchema = Type.Object({
  call_id: callId,
  duration: Type.Number({ minimum: 0, maximum: 86400, description: 'Seconds' }),
  outcome: Type.Enum([...CallOutcomes], { description: 'How the call ended; callback_requested creates a follow-up task downstream' }),
  transcript: Type.Union([Text('Full transcript (never logged)', 200000), Type.Null()])
}, {
  ...Strict,
  examples: [{
    call_id: callExample,
    duration: 180,
    outcome: 'callback_requested',
    transcript: 'Customer wants a callback tomorrow at 2pm.'
  }]
})

export const CallTranscribedSchema = Type.Object({
  call_id: callId,
  transcript: Text('A transcript chunk (never logged)', 50000),
  language: Bcp47('Language of the chunk, BCP 47'),
  confidence: Probability('Recognition confidence, 0..1')
}, { ...Strict, examples: [{ call_id: callExample, transcript: 'Hello, how can I help?', language: 'en-US', confidence: 0.93 }] })

export const CampaignCompletedSchema = Type.Object({
  campaign_id: Id('The campaign'),
  total_calls: Count('Calls made'),
  successful_calls: Count('Calls that reached their goal'),
  failed_calls: Count('Calls that did not'),
  success_rate: Probability('successful_calls / total_calls, 0..1')
}, { ...Strict, examples: [{ campaign_id: 'campaign-42', total_calls: 120, successful_calls: 90, failed_calls: 30, success_rate: 0.75 }] })

export const SentimentAnalyzedSchema = Type.Object({
  call_id: callId,
  sentiment: Type.Enum(['positive', 'neutral', 'negative']),
  score: Type.Number({ minimum: -1, maximum: 1, description: 'Sentiment score, -1 (negative) .. 1 (positive)' }),
  keywords: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 100, description: 'Words that drove the score' })
}, { ...Strict, examples: [{ call_id: callExample, sentiment: 'negative', score: -0.62, keywords: ['cancel', 'refund'] }] })

export const comms = defineEntries('comms', [
  {
    type: 'call.started',
    description: 'A call began.',
    schema: CallStartedSchema,
    routingKey: 'comms.call.started',
    sensitive: ['from_number', 'to_number']
  },
  {
    type: 'call.ended',
    description: 'A call completed, with its outcome and transcript.',
    schema: CallEndedSchema,
    routingKey: 'comms.call.ended',
    sensitive: ['transcript']
  },
  {
    type: 'call.transcribed',
    description: 'A real-time transcript chunk is available.',
    schema: CallTranscribedSchema,
    routingKey: 'comms.call.transcribed',
    sensitive: ['transcript']
  },
  {
    type: 'campaign.completed',
    description: 'A campaign finished; carries its results.',
    schema: CampaignCompletedSchema,
    routingKey: 'comms.campaign.completed',
    dedupeKey: 'campaign_id'
  },
  {
    type: 'sentiment.analyzed',
    description: 'Sentiment was analysed during a call.',
    schema: SentimentAnalyzedSchema,
    routingKey: 'comms.sentiment.analyzed',
    sensitive: ['keywords']
  }
])
