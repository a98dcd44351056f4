// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file (package for
// node_modules), as percentages of the samples that were not idle. Usage:
//   tsx bench/profile-summary.ts FILE.cpuprofile [top]
import { readFileSync } from 'node:fs'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number, children?: number[] }
const [file, topArg] = process.argv.slice(2)
if (file === undefined) throw new Error('usage: profile-summary FILE.cpuprofile [top]')
const top = Number(topArg ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[], samples: number[], timeDeltas: number[] }
const byId = new Map(profile.nodes.map(n => [n.id, n]))
const self = new Map<number, number>()
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))

const where = (url: string) => {
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/')
    return (rest[0]?.startsWith('@') === true ? `${rest[0]}/${rest[1]}` : rest[0]) ?? url
  }
  if (url.startsWith('node:')) return url
  const dist = url.indexOf('/dist/')
  return dist >= 0 ? url.slice(dist + 1) : url === '' ? '(native)' : url.replace(/^file:\/\//, '')
}
const fns = new Map<string, number>()
const files = new Map<string, number>()
let total = 0
for (const [id, us] of self) {
  const n = byId.get(id) as Node
  const name = n.callFrame.functionName || '(anonymous)'
  if (name === '(idle)' || name === '(program)') continue
  total += us
  const w = where(n.callFrame.url)
  const key = `${name} ${w}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`
  fns.set(key, (fns.get(key) ?? 0) + us)
  files.set(w, (files.get(w) ?? 0) + us)
}
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title} (of ${(total / 1000).toFixed(0)} ms active)`)
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${(us / total * 100).toFixed(1).padStart(5)}%  ${k}`)
}
// Inclusive time of the gateway's own functions (dist/ and src/): what each costs with its callees.
const parentOf = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
const inclusive = new Map<string, number>()
for (const [id, us] of self) {
  const name = (byId.get(id) as Node).callFrame.functionName
  if (name === '(idle)' || name === '(program)') continue
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const f = (byId.get(at) as Node).callFrame
    if (!/\/(dist|src)\//.test(f.url) || f.url.includes('node_modules')) continue
    const key = `${f.functionName || '(anonymous)'} ${where(f.url)}:${f.lineNumber + 1}`
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + us)
  }
}
show('self time by function', fns)
show('inclusive time of the gateway\'s functions', inclusive)
show('self time by file or package', files)
