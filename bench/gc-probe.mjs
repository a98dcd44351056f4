// Loaded into a bench server with `node --import`: records every GC pause of 1 ms or more with
// its wall-clock time, and writes them to EVG_BENCH_GC_FILE when the process exits, so that the
// bench can count the pauses inside each measured window. Not part of the gateway.
import { writeFileSync } from 'node:fs'
import process from 'node:process'
import { PerformanceObserver, performance } from 'node:perf_hooks'

const file = process.env.EVG_BENCH_GC_FILE
if (file !== undefined) {
  const pauses = []
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) {
      if (e.duration >= 1) pauses.push([Math.round(performance.timeOrigin + e.startTime), Number(e.duration.toFixed(2))])
    }
  }).observe({ entryTypes: ['gc'] })
  process.on('exit', () => writeFileSync(file, JSON.stringify(pauses)))
}
