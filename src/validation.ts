import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FieldError } from './errors.js'

// One Ajv setup for every schema the gateway checks (single routes, batch items, catalog files),
// so an event is judged the same way whichever door it comes through.
export const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

export function createAjv (): Ajv {
  const ajv = new Ajv({
    coerceTypes: false, // "1" is not 1: producers must send the types they mean
    removeAdditional: false, // unknown properties are rejected, never silently stripped
    useDefaults: false,
    allErrors: true, // find every problem at once; answers list the first few (validationDetails)
    allowUnionTypes: true,
    strict: false
  })
  addFormats(ajv)
  return ajv
}

export type Validator = ValidateFunction

/** Field errors an answer lists per event; the rest are counted, so an answer stays small. */
export const MAX_FIELD_ERRORS = 10

/**
 * The extensions of a validation problem: the first errors as `{path, message}` with JSON Pointer
 * paths, and `errorsOmitted` when there were more.
 */
export function validationDetails (errors: readonly ErrorObject[] | null | undefined, prefix = ''): { errors: FieldError[], errorsOmitted?: number } {
  const all = errors ?? []
  const listed = toFieldErrors(all.slice(0, MAX_FIELD_ERRORS), prefix)
  return all.length > MAX_FIELD_ERRORS ? { errors: listed, errorsOmitted: all.length - MAX_FIELD_ERRORS } : { errors: listed }
}

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
