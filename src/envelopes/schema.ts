import { dataFacts, dataSchemaAt, type Facts, type FieldScope } from './fields.js'
import { SPREAD, type JsonTemplate } from './template.js'
import { compileFunction, compileText, type Value } from './value.js'

// The JSON Schema of what a template writes for one event type: what its consumers receive. The
// data is a reference to the type's own schema (`dataRef`); every other value is described by what
// the compiler knows of it (a constant, its JSON types, its longest text). A value that may be
// missing is left out of `required`, as the encoder leaves it out of the message.

type Schema = Record<string, unknown>

/** What the compiler knows of a value, as a schema: its JSON types, its longest text. */
export function factsSchema (facts: Facts): Schema {
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
    const path = value.field.slice(5).split('.')
    const { schema } = dataSchemaAt(scope, path)
    // A fallback (`{{data.x ?? null}}`) writes a value the field's own schema may not allow.
    const own = dataFacts(scope, ...path)
    const fallback = own.optional !== value.facts.optional || [...value.facts.types].some(t => !own.types.has(t))
    return fallback ? { anyOf: [{ ...schema }, factsSchema(value.facts)] } : { ...schema }
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
  const required = new Set<string>()
  // The template's own keys win over the data's (the encoder leaves those out of a spread).
  const own = new Set(Object.keys(template).filter(k => k !== SPREAD))
  let rest: unknown = false
  let patterns: Record<string, unknown> | undefined
  for (const [key, item] of Object.entries(template)) {
    if (key === SPREAD && typeof item === 'string') {
      // The fields of the data (or of an object in it) merged in: the spread object's own.
      const value = compileText(item, scope)
      const path = value.field === 'data' ? [] : (value.field ?? 'data').slice(5).split('.')
      const { schema } = dataSchemaAt(scope, path) as { schema: Schema }
      for (const [name, sub] of Object.entries((schema.properties ?? {}) as Record<string, unknown>)) {
        if (!own.has(name)) properties[name] = sub
      }
      if (Array.isArray(schema.required)) for (const name of schema.required as string[]) if (!own.has(name)) required.add(name)
      if (schema.patternProperties !== undefined) patterns = schema.patternProperties as Record<string, unknown>
      rest = schema.additionalProperties ?? true
      continue
    }
    const node = nodeSchema(item, scope, dataRef)
    properties[key] = node.schema
    if (!node.optional) required.add(key)
  }
  return {
    schema: {
      type: 'object',
      properties,
      ...(required.size === 0 ? {} : { required: [...required] }),
      ...(patterns === undefined ? {} : { patternProperties: patterns }),
      ...(rest === true ? {} : { additionalProperties: rest })
    },
    optional: false
  }
}

/** The schema of the envelope `template` writes for `scope`'s type; `dataRef` is where the type's data schema is. */
export function envelopeSchema (template: JsonTemplate, scope: FieldScope, dataRef: string): object {
  const { schema, optional } = nodeSchema(template, scope, dataRef)
  // A whole envelope that may be missing is written as null.
  return optional ? { anyOf: [schema, { type: 'null' }] } : schema
}
