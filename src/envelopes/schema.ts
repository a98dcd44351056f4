import { dataSchemaAt, type Facts, type FieldScope } from './fields.js'
import { SPREAD, type JsonTemplate } from './template.js'
import { compileFunction, compileText, type Value } from './value.js'

// The JSON Schema of what a template writes for one event type: what its consumers receive. The
// data is a reference to the type's own schema (`dataRef`); every other value is described by what
// the compiler knows of it (a constant, its JSON types, its longest text). A value that may be
// missing is left out of `required`, as the encoder leaves it out of the message.

type Schema = Record<string, unknown>

function factsSchema (facts: Facts): Schema {
  const types = [...facts.types].filter(t => !(t === 'integer' && facts.types.has('number')))
  return {
    ...(types.length === 1 ? { type: types[0] } : { type: types }),
    ...(facts.maxLength === undefined || !facts.types.has('string') || types.length > 1 ? {} : { maxLength: facts.maxLength })
  }
}

/** A value's schema: the data (or a field of it) as its own schema says, a constant, or what its facts allow. */
function valueSchema (value: Value, scope: FieldScope, dataRef: string): Schema {
  if (value.constant !== undefined) return { const: value.constant.value }
  if (value.field === 'data') return { $ref: dataRef }
  if (value.field?.startsWith('data.') === true) {
    const { schema } = dataSchemaAt(scope, value.field.slice(5).split('.'))
    return { ...schema }
  }
  return factsSchema(value.facts)
}

function nodeSchema (template: JsonTemplate, scope: FieldScope, dataRef: string): { schema: Schema, optional: boolean } {
  if (typeof template === 'string') {
    const value = compileText(template, scope)
    return { schema: valueSchema(value, scope, dataRef), optional: value.facts.optional }
  }
  if (template === null || typeof template !== 'object') return { schema: { const: template }, optional: false }
  if (Array.isArray(template)) {
    // A missing element is written as null (JSON.stringify's way).
    const items = template.map(item => {
      const node = nodeSchema(item, scope, dataRef)
      return node.optional ? { anyOf: [node.schema, { type: 'null' }] } : node.schema
    })
    return { schema: { type: 'array', items, minItems: items.length, additionalItems: false }, optional: false }
  }
  const call = compileFunction(template, scope)
  if (call !== undefined) return { schema: valueSchema(call, scope, dataRef), optional: call.facts.optional }
  const properties: Record<string, unknown> = {}
  const required: string[] = []
  let open = false
  for (const [key, item] of Object.entries(template)) {
    if (key === SPREAD && typeof item === 'string') {
      // The fields of the data (or of an object in it) merged in: the spread object's own.
      const value = compileText(item, scope)
      const path = value.field === 'data' ? [] : (value.field ?? 'data').slice(5).split('.')
      const { schema } = dataSchemaAt(scope, path) as { schema: Schema }
      Object.assign(properties, schema.properties ?? {})
      if (Array.isArray(schema.required)) required.push(...schema.required as string[])
      open ||= schema.additionalProperties !== false
      continue
    }
    const node = nodeSchema(item, scope, dataRef)
    properties[key] = node.schema
    if (!node.optional) required.push(key)
  }
  return {
    schema: {
      type: 'object',
      properties,
      ...(required.length === 0 ? {} : { required }),
      ...(open ? {} : { additionalProperties: false })
    },
    optional: false
  }
}

/** The schema of the envelope `template` writes for `scope`'s type; `dataRef` is where the type's data schema is. */
export function envelopeSchema (template: JsonTemplate, scope: FieldScope, dataRef: string): object {
  return nodeSchema(template, scope, dataRef).schema
}
