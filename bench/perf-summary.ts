// Summarises `perf script -F tid,ip,sym,dso` output of a gateway run under `node
// --perf-basic-prof` (docs/performance.md has the commands): CPU per thread, the main thread's
// time by kind (JIT code, builtins, V8 runtime, GC, kernel, ...), and the inclusive time of each
// JS function, as µs per event. Unlike --cpu-prof it sees the time V8 reports as idle (system
// calls, libuv, worker-message handling) and every thread. Usage:
//   tsx bench/perf-summary.ts FILE PID EVENTS [top] [sampleHz]
// PID: the gateway's (its main thread has the same id); EVENTS: events answered while perf
// recorded; sampleHz: perf record's -F (default 1999; `perf report --header` shows the rate perf
// really used, which the kernel may lower).
// Optimised code moves, and --perf-basic-prof does not record moves: a name that makes no sense
// there (a compile-time function on the request path) is a stale address, not a finding.
import { readFileSync } from 'node:fs'

const [file, pid, eventsArg, topArg, hzArg] = process.argv.slice(2)
if (file === undefined || pid === undefined || eventsArg === undefined) {
  throw new Error('usage: perf-summary FILE PID EVENTS [top] [sampleHz]')
}
const events = Number(eventsArg)
const top = Number(topArg ?? 40)
const usPerSample = 1e6 / Number(hzArg ?? 1999)
const perEvent = (samples: number) => (samples * usPerSample / events).toFixed(1).padStart(7)

// One sample: a header line (the thread id, padded with spaces), then its frames, each on a line
// of its own that starts with a tab, innermost first: "ip sym (dso)".
const samples: { tid: string, frames: string[] }[] = []
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (line.trim() === '') continue
  if (line.startsWith('\t')) samples.at(-1)?.frames.push(line.trim().replace(/^[0-9a-f]+ /, ''))
  else if (/^\s*\d+\s*$/.test(line)) samples.push({ tid: line.trim(), frames: [] })
}
if (samples.length === 0) throw new Error(`no samples in ${file}: was it written by perf script -F tid,ip,sym,dso?`)
const byThread = new Map<string, number>()
for (const s of samples) byThread.set(s.tid, (byThread.get(s.tid) ?? 0) + 1)
const threads = [...byThread].sort((a, b) => b[1] - a[1])
console.log(`CPU by thread (µs/event, of ${perEvent(samples.length).trim()}; the main thread runs the event loop, ` +
  'the others are SQLite writers, the libuv pool and V8\'s GC and compiler threads)')
for (const [tid, n] of threads) {
  if (tid === pid || n * usPerSample / events >= 0.5) console.log(`${perEvent(n)}  thread ${tid}${tid === pid ? ' (main)' : ''}`)
}
const main = pid

const kindOf = (frames: string[]): string => {
  const leaf = frames[0] ?? ''
  const all = frames.join(' ')
  if (leaf.includes('[kernel')) return 'kernel (system calls, wake-ups)'
  if (/Heap::|Scavenge|MarkCompact|Sweeper|Evacuat|ConcurrentMarking|IncrementalMarking|MinorMC/.test(all)) return 'GC'
  if (leaf.startsWith('JS:')) return 'JIT code'
  if (leaf.startsWith('Builtins_')) return 'V8 builtins (ICs, calls, strings)'
  if (all.includes('v8::internal::Runtime')) return 'V8 runtime (slow paths: IC misses, map changes)'
  if (leaf.startsWith('v8::')) return 'V8 other (JSON, strings, buffers)'
  if (/libc|malloc|free|memmove|memcpy/.test(leaf)) return 'libc (malloc, memcpy)'
  if (/llhttp|Parser/.test(leaf)) return 'HTTP parser'
  if (/node::|uv_|uv__/.test(leaf)) return 'Node and libuv'
  return 'other'
}
const kinds = new Map<string, number>()
const inclusive = new Map<string, number>()
let mainSamples = 0
for (const s of samples) {
  if (s.tid !== main) continue
  mainSamples++
  const kind = kindOf(s.frames)
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
  const seen = new Set<string>()
  for (const f of s.frames) {
    if (!f.startsWith('JS:')) continue
    const name = f
      .replace(/^JS:[*^~]?/, '')
      .replace(/ \(\/tmp\/perf-\d+\.map\)$/, '')
      .replace(/file:\/\/\/[^ ]*?\/(dist|src|node_modules)\//, '$1/')
      .replace(/\/[^ ]*?\/node_modules\//, 'node_modules/')
    if (seen.has(name)) continue
    seen.add(name)
    inclusive.set(name, (inclusive.get(name) ?? 0) + 1)
  }
}
console.log(`\nmain thread by kind (µs/event, of ${perEvent(mainSamples).trim()})`)
for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`${perEvent(n)}  ${k}`)
console.log('\nmain thread, inclusive time of JS functions (µs/event; callers include their callees)')
for (const [k, n] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${perEvent(n)}  ${k}`)
