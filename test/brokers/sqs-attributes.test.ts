import t from 'tap'
import { messageAttributes } from '../../src/brokers/aws/sqs.js'
import { compileWireFormat } from '../../src/envelopes/index.js'
import { TENANT, outgoing } from '../helper.js'

t.test('declared attributes: the defaults, rendered by the template, are what the default path sends', async t => {
  const contexts = [{}, { userId: 'user-9' }, { userId: 'u' }]
  for (const ctx of contexts) {
    for (const traceparent of [undefined, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']) {
      const plain = {
        ...outgoing('e-1', { type: 'survey.completed', tenantId: TENANT, ...ctx }),
        ...(traceparent === undefined ? {} : { traceparent })
      }
      const format = compileWireFormat(
        { envelope: 'cloudevents', message: { attributes: {} } },
        'sqs',
        { type: 'survey.completed', schema: { type: 'object' }, source: 's', module: 's' }
      )
      const declared = { ...plain, message: format.message?.(plain.event, plain.traceparent) as NonNullable<typeof plain['message']> }
      t.same(
        messageAttributes(declared),
        messageAttributes(plain),
        `DEFAULT_ATTRIBUTES: ${JSON.stringify(ctx)}, traceparent ${traceparent === undefined ? 'none' : 'set'}`
      )
    }
  }
})
