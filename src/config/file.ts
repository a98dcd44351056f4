import { readFileSync } from 'node:fs'
import type { Ajv } from 'ajv'
import type { TSchema } from 'typebox'
import { ConfigError } from '../errors.js'
import { toFieldErrors } from '../validation/index.js'

/** The JSON in the file a variable names; a ConfigError naming the variable and why when it cannot be read. */
export function readJsonFile (variable: string, path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** The file a variable names, read and checked against `schema`; a ConfigError listing what is wrong otherwise. */
export function loadJsonFile<T> (variable: string, path: string, schema: TSchema, ajv: Ajv): T {
  const json = readJsonFile(variable, path)
  const check = ajv.compile(schema)
  if (!check(json)) throw new ConfigError(`${variable}: ${path} is not valid: ${toFieldErrors(check.errors).map(e => `${e.path} ${e.message}`).join('; ')}`)
  return json as T
}
