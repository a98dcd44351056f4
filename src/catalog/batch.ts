import { Type } from 'typebox'
import { Strict, Text, Uuid } from './fields.js'
import { defineEntries } from './types.js'

// Seed 001: the batch audio pipeline announces finished transcripts on EventBridge.
export const BatchProcessingCompletedSchema = Type.Object({
  interaction_id: Uuid('The processed interaction'),
  raw_transcript: Text('Transcript as recognised', 200000),
  cleaned_transcript: Text('Transcript after cleaning', 200000),
  audio_duration_seconds: Type.Optional(Type.Number({ minimum: 0, description: 'Length of the processed audio' })),
  processing_duration_ms: Type.Optional(Type.Integer({ minimum: 0, description: 'Time the pipeline took' }))
}, {
  ...Strict,
  examples: [{
    interaction_id: '3fa85f64-5717-4562-b3fc-2c963f66afa6',
    raw_transcript: 'um so I would like to uh change my plan',
    cleaned_transcript: 'I would like to change my plan.',
    audio_duration_seconds: 12.4,
    processing_duration_ms: 830
  }]
})

export const batch = defineEntries('batch', [
  {
    type: 'batch.processing.completed',
    description: 'A batch audio job finished; carries the raw and cleaned transcripts (never logged).',
    schema: BatchProcessingCompletedSchema,
    routingKey: 'batch.processing.completed',
    dedupeKey: 'interaction_id',
    sensitive: ['raw_transcript', 'cleaned_transcript']
  }
])
