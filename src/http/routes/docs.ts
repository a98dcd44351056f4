import type { FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import type { Catalog } from '../../catalog/index.js'
import { shapeDocument, type OpenApiDocument } from './openapi.js'

export const API_VERSION = '1.0.0'

/** Tags of the routes that are not a catalog domain; a domain of the same name shares its tag. */
const ROUTE_TAGS = [
  { name: 'batch-publish', description: 'Publish several events of any types in one request' },
  { name: 'read-back', description: 'Read the calling tenant\'s events back from the local destination' },
  { name: 'catalog', description: 'The event types this gateway accepts, with their schemas' },
  { name: 'operations', description: 'Health and metrics, for orchestrators and Prometheus' },
  {
    name: 'admin',
    description: 'Spool mode: the outbox of each spooled destination and its dead letters, every tenant\'s; ' +
      'with API_KEYS_FILE, keys with "admin": true only'
  }
]

/** The OpenAPI document (generated from the routes) and Swagger UI at /docs. */
async function docsPlugin (app: FastifyInstance, opts: { catalog: Catalog }): Promise<void> {
  const domains = [...new Set(opts.catalog.list().map(e => e.domain))].filter(d => !ROUTE_TAGS.some(t => t.name === d))
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'event-gateway',
        version: API_VERSION,
        description: 'POST an event\'s data to its typed endpoint; the gateway validates it, wraps it in a CloudEvents envelope ' +
          'with the tenant context from the headers, and answers 202 once the broker has it (status published), ' +
          'or, for a spooled destination, once its outbox has it (status queued). ' +
          'Errors are RFC 9457 problems (application/problem+json) with a stable EVG_* code. ' +
          'What consumers receive at each destination (envelopes, headers, addresses): [the AsyncAPI document](/docs/asyncapi).',
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // The gateway that serves this document; it does not know the address clients reach it by.
      servers: [{ url: '/', description: 'This gateway' }],
      tags: [
        ...domains.map(name => ({ name, description: `Publish the event types of the ${name} domain, one operation per type` })),
        ...ROUTE_TAGS
      ],
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API key as `Authorization: Bearer <key>`: required when the gateway has API_KEYS_FILE, ignored otherwise'
          }
        }
      }
    },
    // Only an OpenAPI document is ever generated here (`openapi` above), never a Swagger 2 one.
    transformObject: document => 'openapiObject' in document
      ? shapeDocument(document.openapiObject as OpenApiDocument, opts.catalog)
      : document.swaggerObject
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: true } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  // The address the start log prints leads a browser somewhere useful; a client asking for JSON gets the same links.
  app.get('/', { schema: { hide: true }, config: { rateLimit: false } }, async (request, reply) => {
    const accept = request.headers.accept
    if (accept?.includes('text/html') !== true && accept?.includes('application/json') === true) return reply.send({ links: LINKS })
    return reply.type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
      .send(HOME)
  })
}

/** Where a person starts. */
const LINKS = [
  { href: '/docs', title: 'API documentation (Swagger UI): every event type, its schema and an example to try' },
  { href: '/openapi.json', title: 'The OpenAPI document' },
  { href: '/docs/asyncapi', title: 'What consumers receive (AsyncAPI): each destination\'s channels, envelopes and headers' },
  { href: '/asyncapi.json', title: 'The AsyncAPI document' },
  { href: '/v1/event-types', title: 'The event types, with their JSON Schemas' },
  { href: '/health/ready', title: 'Readiness: each destination and its state' },
  { href: '/metrics', title: 'Prometheus metrics' }
]

const INTRO = "POST an event's data to <code>/v1/events/{type}</code>; the gateway validates it and delivers it to its destinations."

const HOME = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>event-gateway</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}li{margin:.4rem 0}</style></head>
<body><h1>event-gateway</h1><p>${INTRO}</p>
<ul>${LINKS.map(l => `<li><a href="${l.href}">${l.href}</a>: ${l.title}</li>`).join('')}</ul></body></html>
`

// Not encapsulated: swagger must see every route and decorate the root instance.
export const docs = fp(docsPlugin, { name: 'evg-docs' })
