import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { parse } from 'yaml'
import { TENANT, build, exampleOf, post } from '../helper.js'

// deploy/prometheus and deploy/grafana: the rules pass promtool and their unit tests, a live
// /metrics passes promtool's lint, and every metric they use is one the gateway exposes.

const root = fileURLToPath(new URL('../../', import.meta.url))
const rulesFile = join(root, 'deploy/prometheus/alerts.yml')

/** Runs promtool with `input` on stdin: its exit code and everything it printed. */
async function promtool (args: string[], input = ''): Promise<{ code: number | null, output: string }> {
  const child = spawn('promtool', args, { cwd: join(root, 'deploy/prometheus') })
  let output = ''
  child.stdout.on('data', d => { output += d })
  child.stderr.on('data', d => { output += d })
  child.stdin.end(input)
  // Without promtool, 'close' rejects with the spawn error too: that is the 'error' branch's answer.
  const [code] = await Promise.race([once(child, 'close').catch(() => [null]), once(child, 'error').then(() => [null])]) as [number | null]
  return { code, output }
}

const hasPromtool = (await promtool(['--version'])).code === 0
// CI installs it (Debian's prometheus package), so there its absence is a failure, not a skip.
const skip = !hasPromtool && !process.env.CI ? 'promtool not installed (apt-get install prometheus)' : false

/** /metrics of the app after the kinds of requests that create every label set. */
async function liveMetrics (t: Test): Promise<string> {
  const { app } = await build(t)
  await app.inject(post('call.ended', exampleOf('call.ended')))
  await app.inject(post('call.ended', { bad: true }))
  await app.inject({
    method: 'POST',
    url: '/v1/events',
    headers: { 'content-type': 'application/json', 'x-tenant-id': TENANT },
    payload: JSON.stringify({ events: [{ type: 'call.ended', data: exampleOf('call.ended') }] })
  })
  await app.inject('/favicon.ico')
  await app.inject('/health/ready')
  return (await app.inject('/metrics')).body
}

t.test('promtool check rules: the alert rules are valid', { skip }, async t => {
  const { code, output } = await promtool(['check', 'rules', rulesFile])
  t.equal(code, 0, output)
})

t.test('promtool test rules: each alert fires when it should and is quiet when it should not', { skip }, async t => {
  const { code, output } = await promtool(['test', 'rules', 'alerts.test.yml'])
  t.equal(code, 0, output)
  // Every alert has a test that expects it to fire.
  const tests = parse(readFileSync(join(root, 'deploy/prometheus/alerts.test.yml'), 'utf8')) as {
    tests: { alert_rule_test?: { alertname: string, exp_alerts: unknown[] }[] }[]
  }
  const fired = new Set(tests.tests.flatMap(
    test => (test.alert_rule_test ?? []).filter(a => a.exp_alerts.length > 0).map(a => a.alertname)
  ))
  t.same([...fired].sort(), alerts().sort())
})

t.test('promtool check metrics: a live /metrics passes Prometheus\' lint', { skip }, async t => {
  const { code, output } = await promtool(['check', 'metrics'], await liveMetrics(t))
  t.equal(code, 0, output)
})

interface Rule { alert?: string, record?: string, expr: string }
const rules = (parse(readFileSync(rulesFile, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap(g => g.rules)
const alerts = () => rules.flatMap(r => r.alert === undefined ? [] : [r.alert])

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
function dashboardQueries (): string[] {
  const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/event-gateway.json'), 'utf8')) as {
    panels: { targets?: { expr: string }[] }[]
    templating: { list: { query?: string | { query: string } }[] }
  }
  return [
    ...dashboard.panels.flatMap(p => (p.targets ?? []).map(target => target.expr)),
    ...dashboard.templating.list.flatMap(v => typeof v.query === 'object' ? [v.query.query] : [])
  ]
}

// Names of the gateway's and Node's metrics in a PromQL text; not inside a recording rule's
// name (`gateway:publish_requests_slow:ratio_rate5m`).
const metricNames = (expr: string) => expr.match(/(?<![\w:])(?:gateway|process|nodejs)_[a-z0-9_]+/g) ?? []

t.test('every metric the dashboard and the alert rules use is on a live /metrics', async t => {
  const text = await liveMetrics(t)
  const exposed = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) => type === 'histogram'
    ? [`${name}_bucket`, `${name}_sum`, `${name}_count`]
    : [name as string]))
  const sources = { 'deploy/prometheus/alerts.yml': rules.map(r => r.expr), 'deploy/grafana/event-gateway.json': dashboardQueries() }
  for (const [file, exprs] of Object.entries(sources)) {
    const used = new Set(exprs.flatMap(metricNames))
    t.ok(used.size >= 5, `${file} uses metrics (${used.size} found)`)
    for (const name of used) t.ok(exposed.has(name), `${file}: ${name} is on /metrics`)
  }
  // And the recorded series the alerts use are recorded.
  const recorded = new Set(rules.flatMap(r => r.record ?? []))
  for (const rule of rules) {
    for (const name of rule.expr.match(/\bgateway:[a-z0-9_:]+/g) ?? []) {
      t.ok(recorded.has(name), `${rule.alert ?? rule.record}: ${name} is recorded`)
    }
  }
})

t.test('the dashboard is a Grafana dashboard whose panels all query the chosen data source', async t => {
  const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/event-gateway.json'), 'utf8')) as {
    uid: string,
    panels: { id: number, type: string, datasource?: { uid: string }, targets?: { expr: string }[] }[],
    templating: { list: { name: string }[] }
  }
  t.ok(dashboard.uid)
  t.ok(dashboard.templating.list.some(v => v.name === 'datasource'))
  const ids = dashboard.panels.map(p => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of dashboard.panels.filter(p => p.type !== 'row')) {
    t.equal(panel.datasource?.uid, '${datasource}', `panel ${panel.id}: data source`)
    t.ok((panel.targets ?? []).length > 0, `panel ${panel.id}: has a query`)
  }
})
