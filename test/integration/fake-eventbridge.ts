import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'

export interface Entry { Source: string, DetailType: string, Detail: string, EventBusName: string, Time?: number, TraceHeader?: string }

/**
 * A local PutEvents endpoint speaking EventBridge's JSON 1.1 protocol: it records each call's
 * entries and fails the entries a test asks it to (`failWith(callNo, entryNo) -> ErrorCode`).
 */
export class FakeEventBridge {
  calls: Entry[][] = []
  failWith: (call: number, entry: number, e: Entry) => string | undefined = () => undefined
  callError: { status: number, type: string } | undefined
  publishOnly = false
  readonly server = createServer((req, res) => { void this.#handle(req, res) })

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = ''
    for await (const chunk of req) body += chunk
    const target = String(req.headers['x-amz-target'])
    const reply = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' })
      res.end(JSON.stringify(json))
    }
    const input = JSON.parse(body || '{}') as Record<string, unknown>
    // a least-privilege producer role: PutEvents only
    if (this.publishOnly && target !== 'AWSEvents.PutEvents') return reply(400, { __type: 'AccessDeniedException', message: 'not authorized to perform: events:DescribeEventBus' })
    const control = this.#control(target, input)
    if (control !== undefined) return reply(control.status, control.json)
    if (target !== 'AWSEvents.PutEvents') return reply(400, { __type: 'UnknownOperationException' })
    if (this.callError) return reply(this.callError.status, { __type: this.callError.type, message: 'scripted' })
    const entries = (JSON.parse(body) as { Entries: Entry[] }).Entries
    const call = this.calls.push(entries) - 1
    let failed = 0
    const results = entries.map((e, i) => {
      const code = this.failWith(call, i, e)
      if (code === undefined) return { EventId: `ev-${call}-${i}` }
      failed++
      return { ErrorCode: code, ErrorMessage: `scripted ${code}` }
    })
    reply(200, { FailedEntryCount: failed, Entries: results })
  }

  get entries (): Entry[] { return this.calls.flat() }

  // The control plane provisioning uses, kept in memory.
  readonly buses = new Set(['default'])
  readonly rules = new Map<string, { bus: string, pattern: string, targets: { Id: string, Arn: string }[] }>()
  readonly #arn = (kind: string, name: string) => `arn:aws:events:us-east-1:000000000000:${kind}/${name}`

  #control (target: string, input: Record<string, unknown>): { status: number, json: unknown } | undefined {
    const notFound = { status: 400, json: { __type: 'ResourceNotFoundException', message: 'not found' } }
    const bus = String(input.EventBusName ?? input.Name ?? 'default')
    const ruleKey = `${String(input.EventBusName ?? 'default')}/${String(input.Name ?? input.Rule)}`
    switch (target) {
      case 'AWSEvents.DescribeEventBus': return this.buses.has(bus) ? { status: 200, json: { Name: bus, Arn: this.#arn('event-bus', bus) } } : notFound
      case 'AWSEvents.CreateEventBus': this.buses.add(String(input.Name)); return { status: 200, json: { EventBusArn: this.#arn('event-bus', String(input.Name)) } }
      case 'AWSEvents.DescribeRule': {
        const rule = this.rules.get(ruleKey)
        return rule ? { status: 200, json: { Name: input.Name, Arn: this.#arn('rule', ruleKey), EventPattern: rule.pattern, State: 'ENABLED', EventBusName: rule.bus } } : notFound
      }
      case 'AWSEvents.PutRule':
        this.rules.set(ruleKey, { bus: String(input.EventBusName ?? 'default'), pattern: String(input.EventPattern), targets: this.rules.get(ruleKey)?.targets ?? [] })
        return { status: 200, json: { RuleArn: this.#arn('rule', ruleKey) } }
      case 'AWSEvents.ListTargetsByRule': return this.rules.has(ruleKey) ? { status: 200, json: { Targets: this.rules.get(ruleKey)?.targets } } : notFound
      case 'AWSEvents.PutTargets': {
        const rule = this.rules.get(ruleKey)
        if (!rule) return notFound
        for (const tg of input.Targets as { Id: string, Arn: string }[]) rule.targets = [...rule.targets.filter(x => x.Id !== tg.Id), tg]
        return { status: 200, json: { FailedEntryCount: 0, FailedEntries: [] } }
      }
      default: return undefined
    }
  }
}

