import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startFauxqs, type FauxqsServer } from 'fauxqs'
import type { Test } from 'tap'
import { dataDir } from '../helper.js'

/** Fake AWS credentials and region for the SDK, with no EC2 metadata lookups. */
export const AWS_CREDENTIALS = {
  AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true'
}

/**
 * fauxqs for a routes file, stopped when `t` ends. Its queue URLs (`http://sqs.<region>.localhost:<port>/...`)
 * parse as URLs, as a routes file wants, but nothing resolves their host: a destination using one
 * names fauxqs as its `endpoint`. The SDK in this process (a gateway built in-process) gets fake
 * credentials; child processes get them through `env`.
 */
export async function startSqs (t: Test): Promise<{ fauxqs: FauxqsServer, queue: (name: string) => string, env: Record<string, string> }> {
  const fauxqs = await startFauxqs({ port: 0, logger: false })
  t.teardown(() => fauxqs.stop())
  Object.assign(process.env, AWS_CREDENTIALS)
  return { fauxqs, queue: name => fauxqs.createQueue(name).queueUrl, env: AWS_CREDENTIALS }
}

/** A routes file (or a queues file) written into a fresh temp dir, removed when the test ends. */
export function writeJson (t: Test, name: string, content: unknown): string {
  const path = join(dataDir(t), name)
  writeFileSync(path, JSON.stringify(content))
  return path
}

/** The port of a gateway listening on 127.0.0.1, as a base URL. */
export function baseUrl (address: string | { port: number } | null): string {
  return `http://127.0.0.1:${(address as { port: number }).port}`
}
