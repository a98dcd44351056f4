// Leg 6: the HTTP stack's ceiling. A bare Fastify route that validates the same call.ended body
// (same schema, same Ajv setup) and answers 202, doing nothing else.
import Fastify from 'fastify'
import { BUILTIN_ENTRIES } from '../src/catalog/index.js'
import { createAjv } from '../src/validation/index.js'

const entry = BUILTIN_ENTRIES.find(e => e.type === 'call.ended')
if (entry === undefined) throw new Error('call.ended missing from the catalog')
const ajv = createAjv()
const app = Fastify({ logger: false })
app.setValidatorCompiler(({ schema }) => ajv.compile(schema))
app.post('/v1/events/call.ended', { schema: { body: entry.schema } }, async (_request, reply) =>
  reply.code(202).send({ status: 'accepted' }))
await app.listen({ port: Number(process.env.PORT ?? 3600), host: '127.0.0.1' })
console.log('ready')
