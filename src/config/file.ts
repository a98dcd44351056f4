import { readFileSync } from 'node:fs'
import type { Ajv } from 'ajv'
import type { Static, TSchema } from 'typebox'
import { codeOf, ConfigError, messageOf } from '../errors.js'
import { toFieldErrors } from '../validation/index.js'

/**
 * The JSON in the file a variable names; a ConfigError naming the variable and why when it cannot
 * be read. `secret`: the file holds secrets, so a syntax error says where, never what is there
 * (JSON.parse quotes the text around it).
 */
export function readJsonFile (variable: string, path: string, secret = false): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${path}: ${codeOf(err) ?? messageOf(err)}`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    if (!secret) throw new ConfigError(`${variable}: cannot read ${path}: ${messageOf(err)}`)
    const at = Number(/position (\d+)/.exec(messageOf(err))?.[1] ?? NaN)
    const before = Number.isNaN(at) ? undefined : text.slice(0, at).split('\n')
    const where = before === undefined ? '' : ` at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`
    throw new ConfigError(`${variable}: ${path} is not valid JSON${where}`)
  }
}

/**
 * The file a variable names, read and checked against `schema`, as the type the schema describes;
 * a ConfigError listing what is wrong otherwise.
 */
export function loadJsonFile<S extends TSchema> (variable: string, path: string, schema: S, ajv: Ajv): Static<S> {
  const json = readJsonFile(variable, path)
  const check = ajv.compile<Static<S>>(schema)
  if (!check(json)) {
    const why = toFieldErrors(check.errors).map(e => `${e.path} ${e.message}`).join('; ')
    throw new ConfigError(`${variable}: ${path} is not valid: ${why}`)
  }
  return json
}
