/**
 * Compressed request bodies: `Content-Encoding: gzip` (or `x-gzip`), `deflate`, `br` and, where
 * the runtime's zlib has it, `zstd` are decoded while the body streams in, before the JSON parser
 * sees it, and BODY_LIMIT_BYTES applies to the decoded bytes.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import zlib from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { GatewayError } from '../../errors.js'

/**
 * zstd frames may ask for a window of up to 128 MiB, which the decoder would allocate; RFC 9659
 * bounds the window of the HTTP `zstd` coding at 8 MiB (2^23), so a frame asking for more is refused.
 */
const ZSTD_WINDOW_LOG_MAX = 23

// zstd came with Node.js 22.15 and 23.8. Looked up on the namespace at run time, not imported by
// name: on an older Node a named import would stop the module from loading, and here `zstd` is
// only left out (415, and not in Accept-Encoding).
const createZstdDecompress = (zlib as Partial<typeof zlib>).createZstdDecompress

// A Map, not an object: the coding comes from the client, and `constructor` must not find anything.
const DECODERS = new Map<string, () => Transform>([
  ['gzip', () => zlib.createGunzip()],
  // RFC 9110 (8.4.1.3): a recipient should take x-gzip as gzip.
  ['x-gzip', () => zlib.createGunzip()],
  // RFC 9110's deflate is the zlib format (RFC 1950), not raw deflate.
  ['deflate', () => zlib.createInflate()],
  ['br', () => zlib.createBrotliDecompress()]
])
if (createZstdDecompress !== undefined) {
  DECODERS.set('zstd', () => createZstdDecompress({ params: { [zlib.constants.ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX } }))
}

/** The codings this runtime decodes, as sent in Accept-Encoding with a 415 (RFC 7694). */
export const SUPPORTED_CODINGS: readonly string[] = [...DECODERS.keys()].filter(c => c !== 'x-gzip')

/**
 * The content codings a request's body was sent with, lower case, `identity` and empty list
 * members left out: `[]` for a body as it is. A header sent twice counts as one list.
 */
export function contentCodings (headers: IncomingHttpHeaders): string[] {
  const value = headers['content-encoding']
  if (value === undefined) return []
  return (Array.isArray(value) ? value.join(',') : value)
    .split(',')
    .map(c => c.trim().toLowerCase())
    .filter(c => c !== '' && c !== 'identity')
}

/**
 * Whether the request says it has a body, as Fastify decides it: a GET, HEAD or TRACE body is
 * never read, and neither is a body of no bytes.
 */
function hasBody (request: FastifyRequest): boolean {
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'TRACE') return false
  const length = request.headers['content-length']
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/**
 * The decoded body as the JSON parser reads it: refused (EVG_TOO_LARGE) as soon as it passes the
 * limit, before the chunk that passes it is handed on. `receivedEncodedLength` is the bytes that
 * came over the wire: Fastify checks them against Content-Length and the body limit.
 */
class DecodedBody extends Transform {
  receivedEncodedLength = 0
  private decoded = 0
  private readonly limit: number

  constructor (limit: number) {
    super()
    this.limit = limit
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.decoded += chunk.length
    if (this.decoded > this.limit) {
      done(new GatewayError('EVG_TOO_LARGE', `the body, decoded, is over the limit of ${this.limit} bytes (BODY_LIMIT_BYTES)`))
      return
    }
    done(null, chunk)
  }
}

/**
 * Bodies decoded at once, per process. Each decoder holds native memory that neither the body
 * limit nor the heap-based load shedding sees: a zstd frame may ask for an 8 MiB window, brotli
 * for a few MiB, gzip and deflate 32 KiB. A client could otherwise hold many of them open by
 * stalling mid-body, each declaring a few bytes of Content-Length.
 */
export const MAX_DECODING = 16

/**
 * Decodes `encoded` with `decoder` (`coding`'s) into a DecodedBody of at most `limit` bytes. Whatever
 * ends the decoding early (the limit, a stream that is not valid `coding` data, the client going
 * away, an answer sent before the body was read) stops the decoder at once, so a small body that
 * would inflate to gigabytes costs about `limit` bytes of inflating; the rest of the body is then
 * read and dropped, as Node does with a body nobody reads, so the connection stays usable. Every
 * stream involved has an error listener: none of their errors can go unhandled. `done` is called
 * once, when the decoder is gone.
 */
function decodeBody (
  encoded: Readable,
  decoder: Transform,
  opts: { coding: string, limit: number, reply: FastifyReply, done: () => void }
): DecodedBody {
  const body = new DecodedBody(opts.limit)
  let over = false
  const stop = () => {
    if (over) return
    over = true
    encoded.unpipe(decoder)
    decoder.destroy()
    encoded.resume()
  }
  encoded.on('data', (chunk: Buffer) => { body.receivedEncodedLength += chunk.length })
  // The client went away (or its body broke off): Fastify gets the error it gets for a plain body.
  encoded.on('error', err => {
    stop()
    body.destroy(err)
  })
  encoded.on('close', () => {
    if (over || encoded.readableEnded) return
    stop()
    body.destroy(new Error('the request was closed before its body was complete'))
  })
  decoder.on('error', err => {
    stop()
    body.destroy(new GatewayError('EVG_VALIDATION', `the body is not valid ${opts.coding} data (${err.message})`))
  })
  // The limit, or an error passed on above; Fastify has its own listener for the answer.
  body.on('error', stop)
  body.on('end', () => { over = true })
  // Ended, or destroyed by any of the above: the decoder is gone either way.
  body.once('close', opts.done)
  // Answered before the body was decoded (an unsupported Content-Type, a refusal of another
  // hook): nothing reads the decoder any more, and the piped request would stall the connection.
  opts.reply.raw.once('finish', () => {
    if (over) return
    stop()
    body.destroy()
  })
  encoded.pipe(decoder).pipe(body)
  return body
}

/**
 * Decodes compressed request bodies on every route that reads a body, in preParsing: after the
 * onRequest hooks (a bad tenant is refused before any inflating), before the JSON parser. One
 * coding per request: a list of several (`gzip, br`), or a coding this runtime does not decode,
 * is refused 415 EVG_UNSUPPORTED_MEDIA with Accept-Encoding naming the codings it does. Past
 * MAX_DECODING bodies being decoded, 503 EVG_OVERLOADED before anything is read.
 */
async function contentEncodingPlugin (app: FastifyInstance): Promise<void> {
  let decoding = 0
  app.addHook('preParsing', async (request, reply, payload) => {
    if (request.headers['content-encoding'] === undefined || !hasBody(request)) return payload
    const codings = contentCodings(request.headers)
    const [coding] = codings
    if (coding === undefined) return payload
    const make = DECODERS.get(coding)
    if (codings.length > 1 || make === undefined) {
      const supported = SUPPORTED_CODINGS.join(', ')
      reply.header('accept-encoding', supported)
      const detail = codings.length > 1
        ? `the body has several content codings (${codings.join(', ').slice(0, 128)}); send it with one of: ${supported}`
        : `Content-Encoding '${coding.slice(0, 64)}' is not supported; send the body as it is or with one of: ${supported}`
      throw new GatewayError('EVG_UNSUPPORTED_MEDIA', detail)
    }
    if (decoding >= MAX_DECODING) {
      throw new GatewayError('EVG_OVERLOADED', `${MAX_DECODING} compressed bodies are being decoded; retry shortly`, { retryAfter: 1 })
    }
    decoding++
    const done = () => { decoding-- }
    return decodeBody(payload, make(), { coding, limit: request.routeOptions.bodyLimit, reply, done })
  })
}

/** Compressed request bodies; its refusals are problems. */
export const contentEncoding = fp(contentEncodingPlugin, { name: 'evg-content-encoding', dependencies: ['evg-problems'] })
