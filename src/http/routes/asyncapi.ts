import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { FastifyInstance } from 'fastify'

// The consumers' contract (src/asyncapi/): the AsyncAPI document at /asyncapi.json, and a page
// for people at /docs/asyncapi that renders it with AsyncAPI's own React component, served from
// the installed package (the gateway works offline: no CDN).

const require = createRequire(import.meta.url)
const PACKAGE = '@asyncapi/react-component'

/** The component's standalone bundle and stylesheet, read on first use and kept. */
const assets = new Map<string, Buffer>()
function asset (path: string): Buffer {
  let body = assets.get(path)
  if (body === undefined) {
    body = readFileSync(require.resolve(`${PACKAGE}/${path}`))
    assets.set(path, body)
  }
  return body
}

const INIT = `AsyncApiStandalone.render({
  schema: { url: '/asyncapi.json' },
  config: { show: { sidebar: true, errors: true }, sidebar: { showOperations: 'byDefault' } }
}, document.getElementById('asyncapi'));
`

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>event-gateway: the events it sends (AsyncAPI)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/asyncapi/default.min.css"></head>
<body><div id="asyncapi"><p>Loading <a href="/asyncapi.json">the AsyncAPI document</a>…</p></div>
<script src="/docs/asyncapi/standalone.js"></script><script src="/docs/asyncapi/init.js"></script></body></html>
`

// The bundle compiles parts of itself at run time (new Function): 'unsafe-eval', and nothing from elsewhere.
const CSP = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"

export async function asyncApiRoutes (app: FastifyInstance, opts: { document: () => object }): Promise<void> {
  let document: string | undefined
  const hide = { schema: { hide: true }, config: { rateLimit: false } }
  app.get('/asyncapi.json', hide, async (_request, reply) => {
    document ??= JSON.stringify(opts.document())
    return reply.type('application/json; charset=utf-8').send(document)
  })
  app.get('/docs/asyncapi', hide, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', CSP).send(PAGE))
  app.get('/docs/asyncapi/init.js', hide, async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(INIT))
  app.get('/docs/asyncapi/standalone.js', hide, async (_request, reply) => reply.type('text/javascript; charset=utf-8')
    .header('cache-control', 'public, max-age=3600').send(asset('browser/standalone/index.js')))
  app.get('/docs/asyncapi/default.min.css', hide, async (_request, reply) => reply.type('text/css; charset=utf-8')
    .header('cache-control', 'public, max-age=3600').send(asset('styles/default.min.css')))
}
