import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import { buildApp, type AppDeps } from '../src/app.js'
import type { OutgoingEvent } from '../src/brokers/broker.js'
import { MemoryBroker } from '../src/brokers/memory.js'
import { BUILTIN_ENTRIES, firstExample } from '../src/catalog/index.js'
import { loadConfig, type Config } from '../src/config/index.js'
import { compileWireFormat, type EnvelopeOptions, type EnvelopeSpec } from '../src/envelopes/index.js'
import type { GatewayEvent } from '../src/envelopes/event.js'

export const TENANT = '7c9e6679-7425-40de-944b-e07fc1f90ae7'
export const OTHER_TENANT = '9b2d4f1e-3c5a-4e7b-8d9f-0a1b2c3d4e5f'

/** A fixed event time, so that nothing a test checks depends on the clock. */
export const EVENT_TIME = '2026-01-01T00:00:00.000Z'

/** An event as a broker adapter gets it, for adapter tests. */
export function outgoing (id: string, event: Partial<GatewayEvent> = {}, body = `{"id":"${id}"}`): OutgoingEvent {
  return {
    event: { id, type: 'x', time: EVENT_TIME, tenantId: TENANT, correlationId: `corr-${id}`, data: {}, routingKey: 'x', ...event },
    body,
    contentType: 'application/json'
  }
}

export function exampleOf (type: string): Record<string, unknown> {
  const entry = BUILTIN_ENTRIES.find(e => e.type === type)
  if (entry === undefined) throw new Error(`no type ${type}`)
  return structuredClone(firstExample(entry) as Record<string, unknown>)
}

/**
 * The envelope a destination with this profile (or template) writes for an event: compiled for
 * the event's built-in type, or, for a type the catalog does not have, for data of any shape.
 */
export function envelopeOf (
  envelope: EnvelopeSpec,
  event: GatewayEvent,
  options: EnvelopeOptions = { source: 'svc' },
  traceparent?: string
): string {
  const entry = BUILTIN_ENTRIES.find(e => e.type === event.type)
  const scope = {
    type: event.type,
    schema: entry?.schema ?? { type: 'object' },
    ...(entry?.aggregate === undefined ? {} : { aggregate: entry.aggregate }),
    source: options.source,
    module: options.module ?? options.source
  }
  return compileWireFormat({ envelope }, 'local', scope).encode(event, traceparent)
}

/** Collects log lines so tests can look at what the gateway logged. */
export class LogCapture extends Writable {
  lines: string[] = []
  override _write (chunk: Buffer, _enc: string, done: () => void): void {
    this.lines.push(...chunk.toString().split('\n').filter(Boolean))
    done()
  }

  get text (): string { return this.lines.join('\n') }
  get records (): Record<string, unknown>[] { return this.lines.map(l => JSON.parse(l)) }
}

/** A fresh DATA_DIR, removed when the test ends. */
export function dataDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'evg-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function testConfig (t: Test, env: Record<string, string> = {}): Config {
  return loadConfig({ DATA_DIR: dataDir(t), LOG_LEVEL: 'silent', RETRY_BASE_MS: '1', RETRY_MAX_MS: '5', ...env })
}

/** The production app, built from a test config, with the memory broker unless told otherwise. */
export async function build (t: Test, env: Record<string, string> = {}, deps: AppDeps = {}) {
  const config = testConfig(t, env)
  const broker = deps.broker ?? new MemoryBroker()
  const app = await buildApp(config, { ...deps, broker })
  t.teardown(() => app.close())
  await app.ready()
  return { app, broker: broker as MemoryBroker, config }
}

export function post (type: string, payload: unknown, headers: Record<string, string> = {}) {
  return {
    method: 'POST' as const,
    url: `/v1/events/${type}`,
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload)
  }
}

/** A batch request for the tenant of the tests. */
export function postBatch (events: unknown[], headers: Record<string, string> = {}) {
  return {
    method: 'POST' as const,
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT, ...headers },
    payload: JSON.stringify({ events })
  }
}

/**
 * How a child runs our TypeScript sources: under tap, through tap's own TypeScript loader, so that
 * its coverage (tap tracks every child, whatever its environment says) is of the same transpiled
 * code as the test processes' and adds up with theirs; another loader's output maps the same
 * functions onto src/ at other offsets, and merging the two made the coverage gate fail now and
 * then with every assertion passing. Outside tap: tsx.
 */
export function tsNodeArgs (): string[] {
  const loader = process.execArgv.find(a => a.includes('@tapjs/typescript'))
  return loader === undefined ? ['--import', 'tsx'] : [loader, '--enable-source-maps']
}

/**
 * The environment for a child that runs something other than our sources as the tests load them
 * (the built dist/, a shell running npm): tap still tracks it, but records no coverage of it.
 */
export function uncoveredEnv (env: Record<string, string | undefined>): Record<string, string | undefined> {
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
}

/**
 * Runs one of our TypeScript entry points (src/server.ts, src/cli/*.ts) in a child process, as a
 * user would, collecting what it prints.
 */
export function runTs (script: string, args: string[] = [], env: Record<string, string | undefined> = {}, stdin?: string) {
  const child = spawn(
    process.execPath,
    [...tsNodeArgs(), script, ...args],
    { env: { ...process.env, ...env }, stdio: 'pipe' }
  )
  // Nothing to read unless given: stdin ends at once.
  child.stdin.end(stdin ?? '')
  const out = { stdout: '', stderr: '' }
  child.stdout.on('data', d => { out.stdout += d })
  child.stderr.on('data', d => { out.stderr += d })
  const exit = once(child, 'exit').then(([code]) => code as number | null)
  /** Resolves once `stream` has printed `text` (or the process has ended). */
  const printed = async (stream: 'stdout' | 'stderr', text: string): Promise<void> => {
    while (!out[stream].includes(text) && child.exitCode === null) {
      await Promise.race([once(child[stream], 'data'), exit])
    }
  }
  return { child, out, exit, printed }
}
