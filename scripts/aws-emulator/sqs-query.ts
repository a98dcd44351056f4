import { XMLBuilder } from 'fast-xml-parser'

// SQS's query protocol (form-encoded requests, XML answers), which older SDKs speak (boto3 1.26,
// Debian's), as calls of the JSON protocol fauxqs speaks, and their answers back as XML.

const NUMBERS = new Set(['MaxNumberOfMessages', 'WaitTimeSeconds', 'VisibilityTimeout', 'DelaySeconds', 'MaxResults'])

/**
 * The JSON input of a query request: `AttributeName.1` lists, `Attribute.1.Name`/`.Value` maps,
 * `MessageAttribute.1.Value.StringValue` attribute maps, `<X>RequestEntry.1.<field>` batch entries.
 */
export function queryToJson (params: URLSearchParams): { action: string, input: Record<string, unknown> } {
  const action = params.get('Action') ?? ''
  const flat: Record<string, string> = {}
  for (const [key, value] of params) if (key !== 'Action' && key !== 'Version') flat[key] = value
  return { action, input: shape(flat) }
}

function shape (flat: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const groups = new Map<string, Map<number, Record<string, string>>>()
  for (const [key, value] of Object.entries(flat)) {
    const m = /^([A-Za-z]+)\.(\d+)(?:\.(.+))?$/.exec(key)
    if (m === null) {
      out[key] = NUMBERS.has(key) ? Number(value) : value
      continue
    }
    const [, name, index, rest] = m as unknown as [string, string, string, string | undefined]
    const items = groups.get(name) ?? new Map<number, Record<string, string>>()
    groups.set(name, items)
    const item = items.get(Number(index)) ?? {}
    items.set(Number(index), item)
    item[rest ?? ''] = value
  }
  for (const [name, items] of groups) {
    const ordered = [...items.entries()].sort(([a], [b]) => a - b).map(([, item]) => item)
    if (name === 'AttributeName' || name === 'MessageAttributeName' || name === 'MessageSystemAttributeName') {
      out[`${name}s`] = ordered.map(i => i[''])
    } else if (name === 'Attribute' || name === 'Tag') {
      out[name === 'Tag' ? 'tags' : 'Attributes'] = Object.fromEntries(ordered.map(i => [i.Name ?? i.Key, i.Value]))
    } else if (name === 'MessageAttribute') {
      out.MessageAttributes = attributes(ordered)
    } else if (name.endsWith('RequestEntry')) {
      out.Entries = ordered.map(item => {
        const nested: Record<string, string> = {}
        for (const [k, v] of Object.entries(item)) nested[k] = v
        return shape(nested)
      })
    } else {
      out[name] = ordered
    }
  }
  return out
}

type MessageAttribute = { DataType: string, StringValue?: string, BinaryValue?: string }

function attributes (items: readonly Record<string, string>[]): Record<string, MessageAttribute> {
  return Object.fromEntries(items.map(i => [i.Name, {
    DataType: i['Value.DataType'] ?? 'String',
    ...(i['Value.StringValue'] === undefined ? {} : { StringValue: i['Value.StringValue'] }),
    ...(i['Value.BinaryValue'] === undefined ? {} : { BinaryValue: i['Value.BinaryValue'] })
  }]))
}

interface JsonMessage {
  MessageId: string
  ReceiptHandle: string
  MD5OfBody: string
  Body: string
  Attributes?: Record<string, string>
  MD5OfMessageAttributes?: string
  MessageAttributes?: Record<string, MessageAttribute>
}

const nameValue = (map: Record<string, string> | undefined) => Object.entries(map ?? {}).map(([Name, Value]) => ({ Name, Value }))

/** The `<Action>Result` element's content for a JSON answer. */
function result (action: string, output: Record<string, unknown>): unknown {
  switch (action) {
    case 'ReceiveMessage': return {
      Message: ((output.Messages ?? []) as JsonMessage[]).map(m => ({
        MessageId: m.MessageId,
        ReceiptHandle: m.ReceiptHandle,
        MD5OfBody: m.MD5OfBody,
        Body: m.Body,
        Attribute: nameValue(m.Attributes),
        ...(m.MD5OfMessageAttributes === undefined ? {} : { MD5OfMessageAttributes: m.MD5OfMessageAttributes }),
        MessageAttribute: Object.entries(m.MessageAttributes ?? {}).map(([Name, v]) => ({
          Name,
          Value: {
            ...(v.StringValue === undefined ? {} : { StringValue: v.StringValue }),
            ...(v.BinaryValue === undefined ? {} : { BinaryValue: v.BinaryValue }),
            DataType: v.DataType
          }
        }))
      }))
    }
    case 'GetQueueAttributes': return { Attribute: nameValue(output.Attributes as Record<string, string> | undefined) }
    case 'ListQueues': return { QueueUrl: output.QueueUrls ?? [] }
    case 'SendMessageBatch':
    case 'DeleteMessageBatch':
    case 'ChangeMessageVisibilityBatch': return {
      [`${action}ResultEntry`]: output.Successful ?? [],
      BatchResultErrorEntry: output.Failed ?? []
    }
    default: return output
  }
}

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false, processEntities: true })
const NS = 'http://queue.amazonaws.com/doc/2012-11-05/'

export function jsonToXml (action: string, output: Record<string, unknown>, requestId: string): string {
  return builder.build({
    [`${action}Response`]: {
      '@_xmlns': NS,
      [`${action}Result`]: result(action, output),
      ResponseMetadata: { RequestId: requestId }
    }
  }) as string
}

/** A JSON error as the query protocol's: its code is in `x-amzn-query-error`, else made from `__type`. */
export function errorToXml (json: { __type?: string, message?: string }, queryError: string | undefined, requestId: string): string {
  const [code, type] = (queryError ?? '').split(';')
  return builder.build({
    ErrorResponse: {
      '@_xmlns': NS,
      Error: {
        Type: type || 'Sender',
        Code: code || String(json.__type ?? 'InternalError').replace(/^.*#/, ''),
        Message: json.message ?? ''
      },
      RequestId: requestId
    }
  }) as string
}
