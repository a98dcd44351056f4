import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { LogController, type FastifyHttpOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from '../config/index.js'
import { HEADERS } from './context/headers.js'
import { lazyChildLogger } from './hooks/lazy-logger.js'
import { clientErrorHandler, frameworkErrors } from './problems/index.js'

// Visible ASCII, bounded: it is written on every log line of the request.
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/

/**
 * The one set of Fastify options, shared by the server and every test, so that what tests
 * exercise (limits, validation, logging) is what production runs.
 */
export function serverOptions (config: Config, logStream?: DestinationStream): FastifyHttpOptions<Server> {
  return {
    logger: {
      level: config.LOG_LEVEL,
      ...(logStream === undefined ? {} : { stream: logStream }),
      // Bodies are never logged; credentials in headers are masked should a header ever be logged.
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'], censor: '[redacted]' }
    },
    // One access line per request (app.ts, onResponse) carries every id instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // request.log's child logger is made only when a request logs more than its access line.
    childLoggerFactory: lazyChildLogger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // The start's connections (app.ts, onReady) each wait up to PUBLISH_TIMEOUT_MS for a broker or
    // store that is late, then serve 503s: Fastify's 10 s for a hook would stop the start instead.
    pluginTimeout: 3 * config.PUBLISH_TIMEOUT_MS + 10_000,
    // A caller's X-Request-ID, when it is one we can log safely, else a new one (echoed in app.ts).
    genReqId: request => {
      const given = request.headers[HEADERS.requestId]
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    // Our own 503 problem while closing (src/http/hooks/limits.ts), not Fastify's plain JSON.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    // Node checks the head and request deadlines on this interval: 1 s instead of 30 s, so a
    // stalled client is answered (408) close to its deadline rather than up to 30 s after it.
    http: { headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS, connectionsCheckingInterval: 1000 },
    clientErrorHandler,
    frameworkErrors,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 }
  }
}
