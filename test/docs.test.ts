import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createMetrics } from '../src/metrics.js'
import { codes, readDoc, root, tableRows } from './markdown.js'

// The reference in docs/ is part of the contract: these tests fail when it and the code drift.

const rootDir = fileURLToPath(root)
const docFiles = ['README.md', ...readdirSync(join(rootDir, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`)]
const sorted = (values: Iterable<string>) => [...values].sort()

t.test('docs/metrics.md: every gateway_* metric with its type and exact labels, and no other', async t => {
  const { registry } = createMetrics()
  const metrics = (await registry.getMetricsAsJSON()).filter(m => m.name.startsWith('gateway_'))
  const doc = readDoc('docs/metrics.md')
  const rows = new Map(tableRows(doc).filter(r => /^`gateway_/.test(r[0] ?? '')).map(r => [codes(r[0] as string)[0] as string, r]))
  t.same(sorted(rows.keys()), sorted(metrics.map(m => m.name)), 'the table lists the registry\'s metrics')
  for (const metric of metrics) {
    const row = rows.get(metric.name)
    if (row === undefined) continue
    // prom-client keeps the label names on the metric object; its typings do not declare them.
    const labels = (registry.getSingleMetric(metric.name) as unknown as { labelNames: readonly string[] }).labelNames
    t.equal(row[1], String(metric.type), `${metric.name} is a ${String(metric.type)}`)
    t.same(sorted(codes(row[2] as string)), sorted(labels), `${metric.name} labels`)
  }
  // Nowhere in the docs a metric name that does not exist (histogram series included).
  const names = new Set(metrics.flatMap(m => String(m.type) === 'histogram' ? [m.name, `${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name]))
  for (const file of docFiles) {
    for (const name of new Set(readDoc(file).match(/gateway_[a-z_]+/g))) t.ok(names.has(name), `${file}: ${name} exists`)
  }
})
