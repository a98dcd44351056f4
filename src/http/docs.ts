import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import type { Catalog } from '../catalog/index.js'

export const API_VERSION = '1.0.0'

/** The OpenAPI document (generated from the routes) and Swagger UI at /docs. */
async function docsPlugin (app: FastifyInstance, opts: { catalog: Catalog }): Promise<void> {
  const domains = [...new Set(opts.catalog.list().map(e => e.domain))]
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'event-gateway',
        version: API_VERSION,
        description: 'POST an event\'s data to its typed endpoint; the gateway validates it, wraps it in a CloudEvents envelope with the tenant context from the headers, and answers 202 once the broker has it. Errors are RFC 9457 problems with a stable EVG_* code.'
      },
      tags: [
        ...domains.map(name => ({ name, description: `Event types of the ${name} domain` })),
        { name: 'batch' }, { name: 'read-back' }, { name: 'catalog' }, { name: 'operations' }
      ],
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'Needed when the gateway has API_KEYS_FILE' } }
      }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: true } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}

// Not encapsulated: swagger must see every route and decorate the root instance.
export const docs = fp(docsPlugin, { name: 'evg-docs' })
