import { createServer } from 'node:http'
import { EventBridgeEmulator } from '../../scripts/aws-emulator/eventbridge.js'

export type { Entry } from '../../scripts/aws-emulator/eventbridge.js'

/**
 * The repository's EventBridge emulator alone on an HTTP server of its own (JSON 1.1), for tests
 * that need only PutEvents and the control plane: it records each call's entries and fails the
 * ones a test asks it to (`failWith(callNo, entryNo) -> ErrorCode`, `callError`, `publishOnly`).
 */
export class FakeEventBridge extends EventBridgeEmulator {
  readonly server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body = Buffer.concat(chunks).toString('utf8')
      const { status, json } = await this.handle(String(req.headers['x-amz-target']), JSON.parse(body || '{}') as Record<string, unknown>)
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' })
      res.end(JSON.stringify(json))
    })()
  })
}
