import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'
import { serviceSkip } from '../services.js'

/** Debian's Python, with Debian's aio-pika, pika and boto3 (`.ci/run` installs them); PYTHON moves it. */
export const PYTHON = process.env.PYTHON ?? '/usr/bin/python3'

/** Skip reason when the seeds' Python consumers cannot run here; with REQUIRE_BROKERS=1 (CI) their absence fails instead. */
export async function pythonSkip (): Promise<string | false> {
  return await serviceSkip('Python', {
    at: `${PYTHON} with aio-pika, pika and boto3`,
    probe: async () => {
      const probe = spawnSync(PYTHON, ['-c', 'import aio_pika, pika, boto3'], { encoding: 'utf8' })
      if (probe.status !== 0) throw new Error((probe.stderr || String(probe.error ?? '')).trim().split('\n').at(-1) ?? '')
    },
    hint: 'install them with apt-get install python3-aio-pika python3-pika python3-boto3'
  })
}

export type Line = Record<string, unknown>

/**
 * A consumer running as its own process: every JSON line it prints is kept, and a test awaits the
 * lines it expects instead of sleeping. What it says on stderr is kept too (a dropped or malformed
 * event is said there).
 */
export class ConsumerProcess {
  readonly name: string
  readonly lines: Line[] = []
  stderr = ''
  readonly #child: ChildProcess
  #waiters: { match: (l: Line) => boolean, resolve: (l: Line) => void }[] = []
  #exited = false

  constructor (t: Test, name: string, command: string, args: string[], env: Record<string, string | undefined>) {
    this.name = name
    this.#child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.#child.stdout as NodeJS.ReadableStream }).on('line', text => {
      let line: Line
      try {
        line = JSON.parse(text) as Line
      } catch {
        this.stderr += `(stdout) ${text}\n`
        return
      }
      this.lines.push(line)
      this.#waiters = this.#waiters.filter(w => {
        if (!w.match(line)) return true
        w.resolve(line)
        return false
      })
    })
    this.#child.stderr?.on('data', (chunk: Buffer) => { this.stderr += chunk.toString() })
    this.#child.once('exit', () => { this.#exited = true })
    t.teardown(() => this.stop())
  }

  /** The first line (already printed or to come) that matches; fails after `ms` saying what the consumer said. */
  async waitFor (match: (l: Line) => boolean, what: string, ms = 30_000): Promise<Line> {
    const found = this.lines.find(match)
    if (found !== undefined) return found
    let timer: NodeJS.Timeout | undefined
    const line = new Promise<Line>(resolve => this.#waiters.push({ match, resolve }))
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const exited = this.#exited ? ' (the consumer exited)' : ''
        const said = this.stderr.slice(-2000) || '(nothing on stderr)'
        reject(new Error(`${this.name}: no ${what} within ${ms} ms${exited}; it said: ${said}`))
      }, ms)
    })
    try {
      return await Promise.race([line, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  async stop (): Promise<void> {
    if (this.#exited) return
    this.#child.kill('SIGTERM')
    const exited = once(this.#child, 'exit')
    const forced = setTimeout(() => this.#child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(forced)
  }
}
