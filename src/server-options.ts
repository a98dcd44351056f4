import { randomUUID } from 'node:crypto'
import { LogController, type FastifyServerOptions } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from './config.js'
import { clientErrorHandler } from './http/problems.js'

/**
 * The one set of Fastify options, shared by the server and every test, so that what tests
 * exercise (limits, validation, logging) is what production runs.
 */
export function serverOptions (config: Config, logStream?: DestinationStream): FastifyServerOptions {
  return {
    logger: {
      level: config.LOG_LEVEL,
      ...(logStream === undefined ? {} : { stream: logStream }),
      // Bodies are never logged; credentials in headers are masked should a header ever be logged.
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'], censor: '[redacted]' }
    },
    // One access line per request (app.ts, onResponse) carries every id instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestTimeout: 30000,
    clientErrorHandler,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 }
  }
}
