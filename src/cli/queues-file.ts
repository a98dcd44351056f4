import { readFileSync } from 'node:fs'
import { Type, type Static } from 'typebox'
import { messageOf } from '../errors.js'
import type { DestinationConfig } from '../routing/index.js'
import { DESTINATION_NAME_PATTERN } from '../routing/routes-file.js'
import { createAjv, toFieldErrors } from '../validation/index.js'
import { CliFailure } from './failure.js'

export const QueueSpecSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  destination: Type.Optional(Type.String({
    pattern: DESTINATION_NAME_PATTERN,
    description: 'The RabbitMQ destination whose exchange the queue is bound to; may be left out when the routing has only one'
  })),
  bindings: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { minItems: 1 }),
  deadLetter: Type.Optional(Type.Boolean({
    description: 'Declare it dead-lettering to <exchange>.dlx (x-dead-letter-exchange). Off by default: consumers that declare the ' +
      'queue themselves declare it plain, and RabbitMQ refuses a declaration whose arguments differ'
  }))
}, { additionalProperties: false })

export const RuleSpecSchema = Type.Object({
  name: Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[A-Za-z0-9._-]+$',
    description: 'The rule\'s name on the destination\'s bus'
  }),
  destination: Type.String({
    pattern: DESTINATION_NAME_PATTERN,
    description: 'The EventBridge destination whose events it matches (by their source and detail type)'
  }),
  queue: Type.String({
    minLength: 1,
    maxLength: 80,
    pattern: '^[A-Za-z0-9_-]+(\\.fifo)?$',
    description: 'The SQS queue it delivers to, created with its DLQ, in the destination\'s region'
  })
}, { additionalProperties: false })

export const QueuesFileSchema = Type.Object({
  description: Type.Optional(Type.String({ description: 'What the file is for (which routes file)' })),
  queues: Type.Array(QueueSpecSchema),
  rules: Type.Optional(Type.Array(RuleSpecSchema, {
    description: 'EventBridge rules that deliver a destination\'s events to an SQS queue'
  }))
}, { additionalProperties: false })

export type QueueSpec = Static<typeof QueueSpecSchema>
export type RuleSpec = Static<typeof RuleSpecSchema>
export type QueuesFile = Static<typeof QueuesFileSchema>

const fail = (message: string): never => { throw new CliFailure(1, `--queues: ${message}`) }

export function readQueuesFile (path: string): QueuesFile {
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    fail(`cannot read ${path}: ${messageOf(err)}`)
  }
  const check = createAjv().compile<QueuesFile>(QueuesFileSchema)
  if (check(json)) return json
  return fail(`${path} is not valid: ${toFieldErrors(check.errors).map(e => `${e.path} ${e.message}`).join('; ')}`)
}

/** Each rule under its EventBridge destination; a rule naming another kind or an unknown one is refused. */
export function rulesByDestination (
  rules: readonly RuleSpec[], destinations: readonly DestinationConfig[]
): Map<string, RuleSpec[]> {
  const problems: string[] = []
  const byDestination = new Map<string, RuleSpec[]>()
  for (const r of rules) {
    const d = destinations.find(x => x.name === r.destination)
    if (d === undefined) problems.push(`rule ${r.name}: no destination '${r.destination}' in the routing`)
    else if (d.broker !== 'eventbridge') problems.push(`rule ${r.name}: destination '${r.destination}' is ${d.broker}, not EventBridge`)
    else byDestination.set(d.name, [...(byDestination.get(d.name) ?? []), r])
  }
  if (problems.length > 0) fail(problems.join('\n  '))
  return byDestination
}

/**
 * Each queue under the RabbitMQ destination it binds to: the one it names, else the routing's only
 * RabbitMQ destination. Every destination of the routing counts, not only the ones selected, so
 * that `--destination` never changes where a queue goes. All problems are reported at once.
 */
export function queuesByDestination (
  queues: readonly QueueSpec[], destinations: readonly DestinationConfig[]
): Map<string, QueueSpec[]> {
  const rabbit = destinations.filter(d => d.broker === 'rabbitmq').map(d => d.name)
  const onlyRabbit = rabbit.length === 1 ? rabbit[0] : undefined
  const problems: string[] = []
  const byDestination = new Map<string, QueueSpec[]>()
  for (const q of queues) {
    let name = q.destination
    if (name === undefined) {
      if (onlyRabbit !== undefined) name = onlyRabbit
      else {
        problems.push(rabbit.length === 0
          ? `queue ${q.name}: the routing has no RabbitMQ destination to bind it to`
          : `queue ${q.name} names no destination, and the routing has several RabbitMQ destinations (${rabbit.join(', ')}): ` +
            'add "destination"')
      }
    } else if (!rabbit.includes(name)) {
      const other = destinations.find(d => d.name === name)
      problems.push(other === undefined
        ? `queue ${q.name}: no destination '${name}' in the routing (RabbitMQ destinations: ${rabbit.join(', ') || 'none'})`
        : `queue ${q.name}: destination '${name}' is ${other.broker}, not RabbitMQ`)
    }
    if (name !== undefined && rabbit.includes(name)) byDestination.set(name, [...(byDestination.get(name) ?? []), q])
  }
  if (problems.length > 0) fail(problems.join('\n  '))
  return byDestination
}
