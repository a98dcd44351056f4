import { randomUUID } from 'node:crypto'

// EventBridge as far as the gateway, its CLIs and the seeds' flows use it: buses, rules with event
// patterns, SQS targets that receive EventBridge's own event, and PutEvents. In memory. Tests can
// make calls or entries fail (`callError`, `failWith`) and allow PutEvents only (`publishOnly`).

export interface Entry {
  Source: string
  DetailType: string
  Detail: string
  EventBusName: string
  Time?: number
  TraceHeader?: string
}
export interface Target { Id: string, Arn: string, SqsParameters?: { MessageGroupId?: string } }
export interface Rule { bus: string, pattern: string, targets: Target[] }
export interface Reply { status: number, json: unknown }

/** Where a matched event goes: an SQS queue, by its ARN. */
export type Deliver = (target: Target, body: string) => Promise<void>

export const ACCOUNT = '000000000000'

type Pattern = { [key: string]: Pattern | unknown[] }

/**
 * The event-pattern rules EventBridge applies, for the operators these flows use: a list of values
 * (one must equal the event's, or one of its values when it is a list), and `prefix`,
 * `anything-but` and `exists` filters; an object matches the event's object field by field.
 */
export function matches (pattern: Pattern, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, want]) => {
    const value = event[key]
    if (!Array.isArray(want)) {
      return typeof value === 'object' && value !== null && !Array.isArray(value) && matches(want, value as Record<string, unknown>)
    }
    const values = Array.isArray(value) ? value : [value]
    return want.some(w => {
      if (typeof w !== 'object' || w === null) return value !== undefined && values.some(v => v === w)
      const filter = w as Record<string, unknown>
      if ('exists' in filter) return (value !== undefined) === filter.exists
      if ('prefix' in filter) return values.some(v => typeof v === 'string' && v.startsWith(String(filter.prefix)))
      if ('anything-but' in filter) {
        const but = [filter['anything-but']].flat()
        return value !== undefined && values.every(v => !but.includes(v))
      }
      return false
    })
  })
}

/** Why a pattern is not one this emulator can apply, or undefined. */
function patternProblem (pattern: unknown, at = ''): string | undefined {
  if (typeof pattern !== 'object' || pattern === null || Array.isArray(pattern)) return `${at || 'the pattern'} must be an object`
  for (const [key, want] of Object.entries(pattern)) {
    if (Array.isArray(want)) {
      const bad = want.find(w => typeof w === 'object' && w !== null && !['exists', 'prefix', 'anything-but'].some(op => op in w))
      if (bad !== undefined) {
        return `${at}${key}: the filter ${JSON.stringify(bad)} is not one this emulator applies (exists, prefix, anything-but)`
      }
      continue
    }
    const problem = patternProblem(want, `${at}${key}.`)
    if (problem !== undefined) return problem
  }
  return undefined
}

export class EventBridgeEmulator {
  readonly region: string
  readonly buses = new Set(['default'])
  /** By `bus/name`. */
  readonly rules = new Map<string, Rule>()
  /** Each PutEvents call's entries, in order. */
  calls: Entry[][] = []
  /** Fails an entry with the error code returned (call and entry numbers from 0). */
  failWith: (call: number, entry: number, e: Entry) => string | undefined = () => undefined
  /** Fails every PutEvents call with this answer. */
  callError: { status: number, type: string } | undefined
  /** A least-privilege producer role: PutEvents only. */
  publishOnly = false
  deliver: Deliver | undefined

  constructor (region = 'us-east-1', deliver?: Deliver) {
    this.region = region
    this.deliver = deliver
  }

  get entries (): Entry[] { return this.calls.flat() }

  #arn (kind: string, name: string): string {
    return `arn:aws:events:${this.region}:${ACCOUNT}:${kind}/${name}`
  }

  /** One JSON 1.1 call (`x-amz-target: AWSEvents.<Operation>`). */
  async handle (target: string, input: Record<string, unknown>): Promise<Reply> {
    const operation = target.replace(/^AWSEvents\./, '')
    const error = (type: string, message: string, status = 400): Reply => ({ status, json: { __type: type, message } })
    if (this.publishOnly && operation !== 'PutEvents') {
      return error('AccessDeniedException', `not authorized to perform: events:${operation}`)
    }
    const bus = String(input.EventBusName ?? input.Name ?? 'default')
    const busOf = (value: unknown) => String(value ?? 'default').replace(/^arn:aws:events:[^:]*:[^:]*:event-bus\//, '')
    const ruleKey = `${busOf(input.EventBusName)}/${String(input.Name ?? input.Rule)}`
    const notFound = (what: string) => error('ResourceNotFoundException', `${what} does not exist.`)
    switch (operation) {
      case 'PutEvents': return await this.#putEvents(input)
      case 'DescribeEventBus': {
        const name = busOf(input.Name)
        if (!this.buses.has(name)) return notFound(`Event bus ${bus}`)
        return { status: 200, json: { Name: name, Arn: this.#arn('event-bus', name) } }
      }
      case 'CreateEventBus':
        if (this.buses.has(String(input.Name))) {
          return error('ResourceAlreadyExistsException', `Event bus ${String(input.Name)} already exists.`)
        }
        this.buses.add(String(input.Name))
        return { status: 200, json: { EventBusArn: this.#arn('event-bus', String(input.Name)) } }
      case 'DescribeRule': {
        const rule = this.rules.get(ruleKey)
        if (rule === undefined) return notFound(`Rule ${String(input.Name)}`)
        const arn = this.#arn('rule', ruleKey)
        return { status: 200, json: { Name: input.Name, Arn: arn, EventPattern: rule.pattern, State: 'ENABLED', EventBusName: rule.bus } }
      }
      case 'PutRule': {
        if (!this.buses.has(busOf(input.EventBusName))) return notFound(`Event bus ${busOf(input.EventBusName)}`)
        let pattern: unknown
        try {
          pattern = JSON.parse(String(input.EventPattern))
        } catch {
          return error('InvalidEventPatternException', 'Event pattern is not valid JSON')
        }
        const problem = patternProblem(pattern)
        if (problem !== undefined) return error('InvalidEventPatternException', problem)
        const targets = this.rules.get(ruleKey)?.targets ?? []
        this.rules.set(ruleKey, { bus: busOf(input.EventBusName), pattern: String(input.EventPattern), targets })
        return { status: 200, json: { RuleArn: this.#arn('rule', ruleKey) } }
      }
      case 'ListRules': {
        const onBus = [...this.rules.entries()].filter(([, r]) => r.bus === busOf(input.EventBusName))
        const prefix = String(input.NamePrefix ?? '')
        const rules = onBus
          .map(([key, r]) => ({
            Name: key.slice(r.bus.length + 1),
            Arn: this.#arn('rule', key),
            EventPattern: r.pattern,
            State: 'ENABLED',
            EventBusName: r.bus
          }))
          .filter(r => r.Name.startsWith(prefix))
        return { status: 200, json: { Rules: rules } }
      }
      case 'DeleteRule': {
        if (this.rules.get(ruleKey)?.targets.length) return error('ValidationException', 'Rule can\'t be deleted since it has targets.')
        this.rules.delete(ruleKey)
        return { status: 200, json: {} }
      }
      case 'ListTargetsByRule': {
        const rule = this.rules.get(ruleKey)
        return rule === undefined ? notFound(`Rule ${String(input.Rule)}`) : { status: 200, json: { Targets: rule.targets } }
      }
      case 'PutTargets': {
        const rule = this.rules.get(ruleKey)
        if (rule === undefined) return notFound(`Rule ${String(input.Rule)}`)
        for (const tg of input.Targets as Target[]) rule.targets = [...rule.targets.filter(x => x.Id !== tg.Id), tg]
        return { status: 200, json: { FailedEntryCount: 0, FailedEntries: [] } }
      }
      case 'RemoveTargets': {
        const rule = this.rules.get(ruleKey)
        if (rule === undefined) return notFound(`Rule ${String(input.Rule)}`)
        rule.targets = rule.targets.filter(tg => !(input.Ids as string[]).includes(tg.Id))
        return { status: 200, json: { FailedEntryCount: 0, FailedEntries: [] } }
      }
      default: return error('UnknownOperationException', `${operation} is not an operation this emulator knows`)
    }
  }

  async #putEvents (input: Record<string, unknown>): Promise<Reply> {
    if (this.callError) return { status: this.callError.status, json: { __type: this.callError.type, message: 'scripted' } }
    const entries = (input.Entries ?? []) as Entry[]
    const call = this.calls.push(entries) - 1
    let failed = 0
    const results: Record<string, string>[] = []
    for (const [i, e] of entries.entries()) {
      const bus = String(e.EventBusName ?? 'default').replace(/^arn:aws:events:[^:]*:[^:]*:event-bus\//, '')
      let detail: unknown
      try {
        detail = JSON.parse(e.Detail)
      } catch {
        detail = undefined
      }
      const malformed = typeof detail !== 'object' || detail === null || Array.isArray(detail)
      const code = this.failWith(call, i, e) ??
        (!this.buses.has(bus) ? 'ResourceNotFoundException' : malformed ? 'MalformedDetail' : undefined)
      if (code !== undefined) {
        failed++
        results.push({ ErrorCode: code, ErrorMessage: code === 'MalformedDetail' ? 'Detail is malformed.' : `scripted ${code}` })
        continue
      }
      const id = randomUUID()
      results.push({ EventId: id })
      await this.#route(bus, {
        version: '0',
        id,
        'detail-type': e.DetailType,
        source: e.Source,
        account: ACCOUNT,
        time: new Date(e.Time === undefined ? Date.now() : e.Time * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        region: this.region,
        resources: [],
        detail
      })
    }
    return { status: 200, json: { FailedEntryCount: failed, Entries: results } }
  }

  /** Every rule of the bus whose pattern matches sends the event to its targets. */
  async #route (bus: string, event: Record<string, unknown>): Promise<void> {
    if (this.deliver === undefined) return
    for (const rule of this.rules.values()) {
      if (rule.bus !== bus || !matches(JSON.parse(rule.pattern) as Pattern, event)) continue
      for (const target of rule.targets) await this.deliver(target, JSON.stringify(event))
    }
  }
}
