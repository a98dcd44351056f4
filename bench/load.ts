// What the bench's own load generators share: an open-loop schedule and latency percentiles.
import { readFileSync } from 'node:fs'

/**
 * Starts `one()` at a fixed rate for `seconds`, whether or not earlier calls have finished
 * (open loop, so a slow target shows up as latency, not as a lower offered rate), then waits for
 * all of them. Returns the elapsed seconds.
 */
export async function openLoop (rate: number, seconds: number, one: () => Promise<void>): Promise<number> {
  const started = Date.now()
  const end = started + seconds * 1000
  const pending: Promise<void>[] = []
  let sent = 0
  while (Date.now() < end) {
    const due = Math.floor((Date.now() - started) * rate / 1000)
    while (sent < due) { pending.push(one()); sent++ }
    await new Promise(resolve => setTimeout(resolve, 1))
  }
  await Promise.all(pending)
  return (Date.now() - started) / 1000
}

/** p50/p90/p99 of latencies in ms (sorts the array in place). */
export function percentiles (latencies: number[]): { p50: number, p90: number, p99: number } {
  latencies.sort((a, b) => a - b)
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0
  return { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99) }
}

/**
 * A process's CPU time so far, user + system, every thread, in clock ticks (fields 14 and 15 of
 * /proc/<pid>/stat); with `thread`, that thread's alone (/proc/<pid>/task/<tid>/stat: the main
 * thread is the one whose id is the pid).
 */
export function cpuTicks (pid: number, thread?: number): number {
  const stat = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8')
  // The command name (field 2) may hold spaces: count from the parenthesis that closes it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}
