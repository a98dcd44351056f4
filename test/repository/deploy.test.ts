import { execFile } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { parse, parseAllDocuments } from 'yaml'
import { loadConfig } from '../../src/config/index.js'
import { build } from '../helper.js'
import { fencedBlocks, readDoc } from '../markdown.js'

// deploy/: the Kubernetes manifests, valid against the Kubernetes schemas and consistent with
// each other and with the gateway they run.

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const deploy = join(root, 'deploy')

interface Manifest { apiVersion: string, kind: string, metadata: { name: string, labels?: Record<string, string> }, [key: string]: unknown }

/** Every Kubernetes object in deploy/*.yaml (the kustomization is kustomize's file, not an object). */
const manifests: { file: string, object: Manifest }[] = readdirSync(deploy)
  .filter(f => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .sort()
  .flatMap(file => parseAllDocuments(readFileSync(join(deploy, file), 'utf8')).map(doc => ({ file, object: doc.toJS() as Manifest })))

function one<T = Manifest> (kind: string): T {
  const found = manifests.filter(m => m.object.kind === kind)
  if (found.length !== 1) throw new Error(`deploy/ has ${found.length} ${kind} objects, not one`)
  return (found[0] as { object: Manifest }).object as T
}

/** The model class of kubernetes-models (or of its prometheus-operator CRDs) for an object. */
async function modelOf (apiVersion: string, kind: string): Promise<new (data: unknown) => { validate (): void }> {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion]
  const spec = group === 'monitoring.coreos.com'
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
    : `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${kind}`
  const module = await import(spec) as Record<string, new (data: unknown) => { validate (): void }>
  const model = module[kind]
  if (model === undefined) throw new Error(`${spec} has no ${kind}`)
  return model
}

// One small module (the package's index loads every schema). modelOf builds the module names,
// so type-checking does not need the package.
const hasModels = await modelOf('v1', 'ConfigMap').then(() => true, () => false)
// A devDependency: CI installs it, so there its absence is a failure, not a skip.
const skipModels = !hasModels && !process.env.CI ? 'kubernetes-models is not installed (npm install)' : false

t.test('every manifest in deploy/ is valid against the Kubernetes schemas (ServiceMonitor: ' +
  'the prometheus-operator CRD\'s)', { skip: skipModels }, async t => {
  t.ok(manifests.length >= 7, 'the manifests are found')
  for (const { file, object } of manifests) {
    const Model = await modelOf(object.apiVersion, object.kind)
    t.doesNotThrow(() => new Model(object).validate(), `${file}: ${object.kind} ${object.metadata.name}`)
  }
})

t.test('the schema check catches a broken manifest', { skip: skipModels }, async t => {
  const deployment = structuredClone(one('Deployment')) as unknown as {
    spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } }
  }
  const port = deployment.spec.template.spec.containers[0]?.ports[0]
  if (port !== undefined) port.containerPort = 'http'
  const Model = await modelOf('apps/v1', 'Deployment')
  t.throws(() => new Model(deployment).validate(), /containerPort must be integer/)
})

t.test('the README\'s command that wraps the alert rules in a PrometheusRule makes a valid one', { skip: skipModels }, async t => {
  const command = fencedBlocks(readDoc('README.md'), 'sh').find(block => block.includes('PrometheusRule'))
  t.ok(command?.endsWith('| kubectl apply -f -\n'), 'the README pipes it to kubectl')
  // What it would apply, printed instead.
  const { stdout } = await run('bash', ['-c', (command ?? '').replace(/\| kubectl apply -f -\n$/, '')], { cwd: root })
  const rule = parse(stdout) as { kind: string, spec: { groups: unknown[] } }
  t.equal(rule.kind, 'PrometheusRule')
  t.same(rule.spec, parse(readFileSync(join(deploy, 'prometheus/alerts.yml'), 'utf8')), 'the rules file is its spec')
  const Model = await modelOf('monitoring.coreos.com/v1', 'PrometheusRule')
  t.doesNotThrow(() => new Model(rule).validate())
})

t.test('kustomization.yaml lists every manifest but the ServiceMonitor, which needs the operator\'s CRDs', async t => {
  const kustomization = parse(readFileSync(join(deploy, 'kustomization.yaml'), 'utf8')) as { resources: string[] }
  const files = [...new Set(manifests.filter(m => !m.object.apiVersion.startsWith('monitoring.coreos.com/')).map(m => m.file))]
  t.same([...kustomization.resources].sort(), files.sort())
  t.ok(manifests.some(m => m.file === 'servicemonitor.yaml' && m.object.kind === 'ServiceMonitor'))
})

interface Container {
  name: string
  ports: { name: string, containerPort: number }[]
  env: { name: string, value: string }[]
  envFrom: { configMapRef?: { name: string }, secretRef?: { name: string, optional?: boolean } }[]
  resources: { requests: { cpu?: string, memory?: string }, limits: { memory?: string } }
  startupProbe: { httpGet: { path: string, port: string } }
  livenessProbe: { httpGet: { path: string, port: string } }
  readinessProbe: { httpGet: { path: string, port: string } }
  securityContext: { readOnlyRootFilesystem?: boolean, allowPrivilegeEscalation?: boolean }
  volumeMounts: { name: string, mountPath: string }[]
}
interface Deployment extends Manifest {
  spec: {
    selector: { matchLabels: Record<string, string> }
    template: {
      metadata: { labels: Record<string, string> }
      spec: {
        terminationGracePeriodSeconds: number
        securityContext: { runAsNonRoot?: boolean }
        containers: Container[]
        volumes: { name: string, emptyDir?: object }[]
      }
    }
  }
}
const deployment = one<Deployment>('Deployment')
const pod = deployment.spec.template.spec
const container = pod.containers[0] as Container
const configMap = one<Manifest & { data: Record<string, string> }>('ConfigMap')
const envOf = (name: string) => container.env.find(e => e.name === name)?.value

const matches = (
  selector: Record<string,
  string>,
  labels: Record<string,
  string>
) => Object.entries(selector).every(([k, v]) => labels[k] === v)

t.test('the Service, the PodDisruptionBudget, the autoscaler and the ServiceMonitor find the gateway\'s pods', async t => {
  const labels = deployment.spec.template.metadata.labels
  t.ok(matches(deployment.spec.selector.matchLabels, labels), 'Deployment selector')
  const service = one<Manifest & { spec: { selector: Record<string, string>, ports: { name: string, targetPort: string }[] } }>('Service')
  t.ok(matches(service.spec.selector, labels), 'Service selector')
  for (const port of service.spec.ports) {
    t.ok(container.ports.some(p => p.name === port.targetPort), `Service port ${port.name} targets a container port`)
  }
  t.ok(
    matches(
      one<Manifest & { spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget').spec.selector.matchLabels,
      labels
    ),
    'PodDisruptionBudget selector'
  )
  const hpa = one<Manifest & { spec: { scaleTargetRef: { kind: string, name: string }, minReplicas: number } }>('HorizontalPodAutoscaler')
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name })
  t.ok(hpa.spec.minReplicas >= 2, 'at least two pods, so that a drain (one at a time) leaves one answering')
  t.ok(container.resources.requests.cpu, 'a CPU request, which CPU utilization is measured against')
  const monitor = one<Manifest & {
    spec: { selector: { matchLabels: Record<string, string> }, endpoints: { port: string, path: string }[] }
  }>('ServiceMonitor')
  t.ok(matches(monitor.spec.selector.matchLabels, service.metadata.labels ?? {}), 'ServiceMonitor selects the Service')
  for (const endpoint of monitor.spec.endpoints) {
    t.ok(service.spec.ports.some(p => p.name === endpoint.port), `ServiceMonitor port ${endpoint.port} is a Service port`)
    t.equal(endpoint.path, '/metrics')
  }
  t.same(container.envFrom, [{ configMapRef: { name: configMap.metadata.name } }, { secretRef: { name: 'event-gateway', optional: true } }])
})

t.test('the probes ask the gateway\'s health routes, on the port it listens on', async t => {
  const { app } = await build(t)
  const port = container.ports.find(p => p.name === 'http')
  const config = loadConfig({ ...configMap.data, ...Object.fromEntries(container.env.map(e => [e.name, e.value])) })
  t.equal(port?.containerPort, config.PORT, 'containerPort is PORT')
  t.equal(container.livenessProbe.httpGet.path, '/health/live')
  t.equal(container.readinessProbe.httpGet.path, '/health/ready')
  for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
    t.equal(probe.httpGet.port, 'http')
    t.equal((await app.inject(probe.httpGet.path)).statusCode, 200, `${probe.httpGet.path} answers 200`)
  }
})

t.test('the configuration is one the gateway accepts', async t => {
  t.doesNotThrow(() => loadConfig({ ...configMap.data, ...Object.fromEntries(container.env.map(e => [e.name, e.value])) }))
})

t.test('terminationGracePeriodSeconds covers the shutdown sequence', async t => {
  // Drain, then in-flight requests (each bounded by the publish deadline), then spooled
  // destinations' relays' last batch (bounded by it too), then at most 2 s of span export and 2 s of log flushing.
  const drain = Number(configMap.data.SHUTDOWN_DRAIN_SECONDS)
  const publish = loadConfig(configMap.data).PUBLISH_TIMEOUT_MS / 1000
  t.ok(drain > 0, 'SHUTDOWN_DRAIN_SECONDS is stated')
  t.ok(
    pod.terminationGracePeriodSeconds >= drain + 2 * publish + 2 + 2 + 5,
    `${pod.terminationGracePeriodSeconds} s >= ${drain} s drain + ${publish} s publish + ${publish} s relays ` +
      '+ 2 s spans + 2 s logs + 5 s to close the brokers'
  )
})

t.test('the pod runs as non-root on a read-only root filesystem, DATA_DIR on an emptyDir', async t => {
  t.equal(pod.securityContext.runAsNonRoot, true)
  t.equal(container.securityContext.readOnlyRootFilesystem, true)
  t.equal(container.securityContext.allowPrivilegeEscalation, false)
  const mount = container.volumeMounts.find(m => m.mountPath === envOf('DATA_DIR'))
  t.ok(mount, 'DATA_DIR is a mounted volume')
  t.ok(pod.volumes.find(v => v.name === mount?.name)?.emptyDir, 'an emptyDir')
})

t.test('the heap limit fits in the memory limit', async t => {
  const heapMb = Number(envOf('NODE_OPTIONS')?.match(/--max-old-space-size=(\d+)/)?.[1])
  const limit = container.resources.limits.memory?.match(/^(\d+)Mi$/)?.[1]
  t.ok(heapMb > 0 && limit !== undefined, 'both stated (NODE_OPTIONS, limits.memory in Mi)')
  // V8's young space, buffers and the SQLite writer live outside the old space.
  t.ok(heapMb <= Number(limit) * 0.6, `${heapMb} MB of old space in a ${String(limit)} Mi container`)
})

const noKubectl = await run('kubectl', ['version', '--client']).then(
  () => false,
  () => 'kubectl not installed (it is not a Debian package; the kustomization\'s resource list is checked above)'
)

t.test('kubectl kustomize builds deploy/', { skip: noKubectl }, async t => {
  const { stdout } = await run('kubectl', ['kustomize', deploy])
  const kinds = parseAllDocuments(stdout).map(d => (d.toJS() as Manifest).kind).sort()
  t.same(kinds, manifests.filter(m => m.object.kind !== 'ServiceMonitor').map(m => m.object.kind).sort())
})
