// The hand-written bridge: what a team writes instead of adopting the gateway. Fastify with the
// same schema validation, an amqplib confirm channel, persistent + mandatory publishes of the
// body as it came, 202 on the broker's confirm. No envelope, no metrics, no logs.
import Fastify from 'fastify'
import amqplib from 'amqplib'
import { BUILTIN_ENTRIES } from '../src/catalog/index.js'
import { createAjv } from '../src/validation/index.js'

const entry = BUILTIN_ENTRIES.find(e => e.type === 'call.ended')
if (entry === undefined) throw new Error('call.ended missing from the catalog')
const exchange = process.env.AMQP_EXCHANGE ?? 'evg-bench'
const conn = await amqplib.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', { noDelay: true })
const ch = await conn.createConfirmChannel()
const ajv = createAjv()
const app = Fastify({ logger: false })
app.setValidatorCompiler(({ schema }) => ajv.compile(schema))
app.post('/v1/events/call.ended', { schema: { body: entry.schema } }, async (request, reply) => {
  await new Promise<void>((resolve, reject) => {
    const options = { persistent: true, mandatory: true, contentType: 'application/json' }
    ch.publish(exchange, 'comms.call.ended', Buffer.from(JSON.stringify(request.body)), options, err => err ? reject(err) : resolve())
  })
  return reply.code(202).send({ status: 'accepted' })
})
await app.listen({ port: Number(process.env.PORT ?? 3601), host: '127.0.0.1' })
console.log('ready')
