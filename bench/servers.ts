// Starting, watching and stopping the bench's servers, and the closed-loop load (autocannon).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const bin = (name: string) => join(root, 'node_modules/.bin', name)
const probe = join(root, 'bench/gc-probe.mjs')

/** The gateway's node arguments exactly as `npm start` has them (flags included), minus npm itself. */
export function gatewayArgs (): string[] {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').slice(1)
}

export interface Server {
  child: ChildProcess
  base: string
  /** VmHWM of the process, while it runs. */
  peakRssMb: () => number | undefined
  /** Stops it (SIGTERM) and gives its GC pauses [epoch ms, ms]; idempotent. */
  stop: () => Promise<[number, number][]>
}

export async function waitHttp (url: string, init: RequestInit = {}, seconds = 60): Promise<boolean> {
  const until = Date.now() + seconds * 1000
  while (Date.now() < until) {
    try {
      const res = await fetch(url, init)
      if (res.status < 500) return true
    } catch {
      // not listening yet
    }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  return false
}

/**
 * Starts `node [flags] --import gc-probe script` and waits until `ready` answers. `script` is the
 * last of `args`; flags before it stay as they are.
 */
export async function startServer (
  args: string[], env: Record<string, string>, base: string, ready: string, gcFile: string
): Promise<Server | undefined> {
  const withProbe = [...args.slice(0, -1), '--import', probe, ...args.slice(-1)]
  const child = spawn(process.execPath, withProbe, {
    cwd: root,
    env: { ...process.env, ...env, EVG_BENCH_GC_FILE: gcFile },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  let stopped: Promise<[number, number][]> | undefined
  const server: Server = {
    child,
    base,
    peakRssMb: () => {
      if (child.pid === undefined || child.exitCode !== null) return undefined
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))
      return m ? Number(m[1]) / 1024 : undefined
    },
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise(resolve => child.once('exit', resolve))
          child.kill('SIGTERM')
          await exited
        }
        return existsSync(gcFile) ? JSON.parse(readFileSync(gcFile, 'utf8')) as [number, number][] : []
      })()
      return stopped
    }
  }
  if (!await waitHttp(`${base}${ready}`)) {
    await server.stop()
    return undefined
  }
  return server
}

/** GC pauses inside the measured windows: the longest, and how many took over 5 ms. */
export function gcPauses (pauses: [number, number][], windows: [number, number][]): { max: number, over5: number } {
  const inside = pauses.filter(([at]) => windows.some(([from, to]) => at >= from && at <= to)).map(([, ms]) => ms)
  return { max: Math.max(0, ...inside), over5: inside.filter(ms => ms > 5).length }
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export function runJson (cmd: string, args: string[]): Record<string, unknown> {
  const out = execFileSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'inherit'] })
  return JSON.parse(out.trim().split('\n').filter(l => l.startsWith('{')).at(-1) as string)
}

/** What autocannon's `--json` (and bench/keyed.ts) print, as far as it is read. */
type AutocannonSummary = {
  requests: { average: number }
  latency: { p50: number, p90: number, p99: number }
  non2xx: number
  errors: number
  timeouts: number
}

/** A warm-up run, then the measured closed-loop run. */
/**
 * `keyed`: through bench/keyed.ts (autocannon's API), with a fresh Idempotency-Key per request
 * when true, without when false: keyed legs and their unkeyed twins pay the same client.
 */
export function autocannon (
  url: string, opts: { connections: number, body: string, headers: string[], seconds: number, warmup: number, keyed?: boolean }
) {
  const [cmd, args, duration] = opts.keyed === undefined
    ? [bin('autocannon'), [
        '--json', '-c', String(opts.connections), '-m', 'POST', '-i', opts.body, '-H', 'content-type: application/json',
        ...opts.headers.flatMap(h => ['-H', h])
      ], '-d']
    : [process.execPath, [
        '--import', 'tsx', 'bench/keyed.ts', '--url', url, '--body', opts.body, '--connections', String(opts.connections),
        ...opts.headers.flatMap(h => ['--header', h]), ...(opts.keyed ? [] : ['--unkeyed'])
      ], '--seconds']
  const urlArg = opts.keyed === undefined ? [url] : []
  if (opts.warmup > 0) runJson(cmd, [...args, duration, String(opts.warmup), ...urlArg])
  const r = runJson(cmd, [...args, duration, String(opts.seconds), ...urlArg]) as AutocannonSummary
  return { rate: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, non2xx: r.non2xx + r.errors + r.timeouts }
}
