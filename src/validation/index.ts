import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FieldError } from '../errors.js'

// One Ajv setup for every schema the gateway checks (single routes, batch items, catalog files),
// so an event is judged the same way whichever door it comes through.
// ajv-formats is CommonJS: its module is the plugin, which is its own `default` too (what its types describe).
export const addFormats = addFormatsModule.default

export function createAjv (options: { allErrors?: boolean } = {}): Ajv {
  const ajv = new Ajv({
    coerceTypes: false, // "1" is not 1: producers must send the types they mean
    removeAdditional: false, // unknown properties are rejected, never silently stripped
    useDefaults: false,
    allErrors: options.allErrors ?? true, // find every problem at once; answers list the first few (validationDetails)
    allowUnionTypes: true,
    strict: false
  })
  addFormats(ajv)
  return ajv
}

export type Validator = ValidateFunction

/** Collections larger than this get their first error only: finding them all would cost more than the body. */
export const MAX_COLLECTION_FOR_ALL_ERRORS = 1000

function hasLargeCollection (value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  const children = Array.isArray(value) ? value : Object.values(value)
  return children.length > limit || children.some(c => hasLargeCollection(c, limit))
}

let firstErrorAjv: Ajv | undefined

/**
 * A body validator whose errors never cost much more than the body: a valid body is checked once
 * (stopping at the first error); an invalid one is checked again for all its errors only when no
 * collection in it is large (an array of 100,000 wrong items would otherwise make 100,000 error
 * objects, many times the body's size).
 */
export function compileBodyValidator (ajv: Ajv, schema: object): Validator {
  firstErrorAjv ??= createAjv({ allErrors: false })
  const first = firstErrorAjv.compile(schema)
  const all = ajv.compile(schema)
  // Called and its errors read like Ajv's own; it has not their other properties (schema, schemaEnv).
  const validate = ((data: unknown) => {
    if (first(data)) {
      validate.errors = null
      return true
    }
    if (hasLargeCollection(data, MAX_COLLECTION_FOR_ALL_ERRORS) || all(data)) validate.errors = first.errors
    else validate.errors = all.errors
    return false
  }) as Validator
  return validate
}

/** Field errors an answer lists per event; the rest are counted, so an answer stays small. */
export const MAX_FIELD_ERRORS = 10

/**
 * The extensions of a validation problem: the first errors as `{path, message}` with JSON Pointer
 * paths, and `errorsOmitted` when there were more.
 */
export function validationDetails (
  errors: readonly ErrorObject[] | null | undefined,
  prefix = '',
  limit = MAX_FIELD_ERRORS
): { errors: FieldError[], errorsOmitted?: number } {
  const all = errors ?? []
  const listed = toFieldErrors(all.slice(0, limit), prefix)
  return all.length > listed.length ? { errors: listed, errorsOmitted: all.length - listed.length } : { errors: listed }
}

/** Field errors a batch answer lists in all; past it, events get their count only. */
export const MAX_BATCH_FIELD_ERRORS = 100

/** Ajv errors as `{path, message}` with JSON Pointer paths that name the offending field. */
export function toFieldErrors (errors: readonly ErrorObject[] | null | undefined, prefix = ''): FieldError[] {
  if (!errors) return []
  return errors.map(e => {
    let path = e.instancePath
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'required') {
      path += `/${String(e.params.missingProperty)}`
      message = 'is required'
    } else if (e.keyword === 'additionalProperties') {
      path += `/${String(e.params.additionalProperty)}`
      message = 'is not an allowed property'
    } else if (e.keyword === 'enum') {
      message = `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`
    }
    return { path: prefix + path || '/', message }
  })
}
