import { loadCatalog, type Catalog } from '../catalog/index.js'
import { orExitOnConfigError, type Config } from '../config/index.js'
import { loadRouting, type DestinationConfig, type Routing } from '../routing/index.js'
import { createAjv } from '../validation/index.js'
import { cliConfig, exitWith, safeUrl } from './common.js'

export interface CliSetup {
  config: Config
  catalog: Catalog
  routing: Routing
}

/**
 * What the gateway would run with: the config, the whole catalog (EVENT_CATALOG_DIR included) and
 * the routing (ROUTES_FILE, else the one default destination). A bad one prints why and exits 1.
 */
export async function cliSetup (): Promise<CliSetup> {
  const config = await cliConfig()
  return orExitOnConfigError(() => {
    const ajv = createAjv()
    const catalog = loadCatalog(config, ajv)
    const routing = loadRouting(config, catalog.list(), ajv)
    for (const warning of routing.warnings) console.error(`routing: ${warning}`)
    return { config, catalog, routing }
  })
}

/** The destinations `--destination` names, in routing order; all of them without the flag. */
export function selectDestinations (routing: Routing, names: readonly string[] | undefined): DestinationConfig[] {
  if (names === undefined || names.length === 0) return routing.destinations
  const unknown = names.filter(n => !routing.destinations.some(d => d.name === n))
  if (unknown.length > 0) noSuchDestination(routing, unknown)
  return routing.destinations.filter(d => names.includes(d.name))
}

/** The one destination `--destination` names, for a CLI that takes one. */
export function selectDestination (routing: Routing, name: string): DestinationConfig {
  return routing.destinations.find(d => d.name === name) ?? noSuchDestination(routing, [name])
}

function noSuchDestination (routing: Routing, names: readonly string[]): never {
  const known = routing.destinations.map(d => d.name)
  return exitWith(1, `--destination: no destination named ${names.map(n => `'${n}'`).join(', ')} in the routing ` +
    `(it has: ${known.join(', ')}; destinations no route uses are left out)`)
}

/** Where a destination's events go, for headings (passwords masked). */
export function describeDestination (d: DestinationConfig): string {
  const region = (r: string | undefined) => r === undefined ? '' : ` (region ${r})`
  switch (d.broker) {
    case 'rabbitmq': return `RabbitMQ ${safeUrl(d.url)}, exchange ${d.exchange}`
    case 'sqs': return `SQS queue ${d.queueUrl}${region(d.region)}`
    case 'eventbridge': return `EventBridge bus ${d.busName}${region(d.region)}`
    case 'kafka': return `Kafka ${d.brokers}, topic ${d.topic}`
    case 'local': return 'the local store'
  }
}

/** Catalog types routed to a destination, in catalog order. */
export function typesRoutedTo (setup: Pick<CliSetup, 'catalog' | 'routing'>, name: string): string[] {
  return setup.catalog.list().map(e => e.type).filter(type => setup.routing.routes.get(type)?.includes(name) === true)
}
