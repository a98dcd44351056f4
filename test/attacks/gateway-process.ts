import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { Agent } from 'node:http'
import { request } from 'node:http'
import { createServer } from 'node:net'
import type { Test } from 'tap'
import { TENANT, dataDir, tsNodeArgs } from '../helper.js'

// The gateway as `npm start` runs it (capped heap), in a child process, for tests that attack it
// over loopback the way a careless or hostile client would.

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  return port
}

/** Starts src/server.ts (optionally under `ulimit -n`), waits until it listens. */
export async function gateway (t: Test, env: Record<string, string> = {}, openFiles?: number) {
  const port = await freePort()
  const fullEnv = { ...process.env, LOG_LEVEL: 'warn', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir(t), ...env }
  const node = [process.execPath, '--max-old-space-size=192', '--max-semi-space-size=8', ...tsNodeArgs(), 'src/server.ts']
  const child = openFiles === undefined
    ? spawn(node[0] as string, node.slice(1), { env: fullEnv, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('bash', ['-c', `ulimit -n ${openFiles} && exec "$@"`, 'bash', ...node], { env: fullEnv, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', d => { stderr += d })
  const exit = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { child.kill('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the gateway exited: ${stderr}`)
    if (await fetch(`${base}/health/live`).then(r => r.ok, () => false)) break
    await new Promise(resolve => setTimeout(resolve, 100)) // start-up: nothing to await but the port
  }
  const alive = async () => child.exitCode === null && (await fetch(`${base}/health/live`).then(r => r.status, () => 0)) === 200
  return { child, port, base, exit, alive, stderr: () => stderr }
}

type Answer = { status: number, headers: Record<string, unknown>, body: string }

export const postEvent = (base: string, body: string, agent?: Agent) => new Promise<Answer>((resolve, reject) => {
  const headers = { 'content-type': 'application/json', 'x-tenant-id': TENANT }
  const req = request(`${base}/v1/events/call.ended`, { method: 'POST', agent, headers }, res => {
    let text = ''
    res.on('data', d => { text += d })
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
  })
  req.on('error', reject)
  req.end(body)
})
