/**
 * Edited tool arguments against the tool's JSON Schema (from `/api/tools`), before they are sent: a small checker of
 * the subset that catches what people get wrong — `type`, `required`, `enum`/`const`, `properties` with
 * `additionalProperties`, `items`, `anyOf`/`oneOf` — worded like the server's errors ("code: should be text"). Any
 * other keyword is left to the server, which checks everything again. Pure; bounded in depth and in problems.
 */
import { kindWord } from "./errors.ts"

export interface Problem {
  /** Dotted path of the value (`code`, `items.2.name`); "" for the arguments themselves. */
  readonly path: string
  readonly problem: string
}

/** Deeper schemas or values are not looked into (the server checks them). */
const MAX_DEPTH = 32
/** At most this many problems are reported. */
const MAX_PROBLEMS = 8

type Schema = { readonly [key: string]: unknown }

const isRecord = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v)

/** The JSON type of a value, as JSON Schema names them ("integer" for whole numbers). */
const typeOf = (v: unknown): string => {
  if (v === null) return "null"
  if (Array.isArray(v)) return "array"
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number"
  return typeof v
}

const fitsType = (v: unknown, type: string): boolean => {
  const t = typeOf(v)
  return t === type || (type === "number" && t === "integer")
}

/** A value as it may appear in a message: short JSON. */
const shown = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v)
  return text.length > 40 ? `${text.slice(0, 39)}…` : text
}

const join = (path: string, key: string | number): string => (path === "" ? String(key) : `${path}.${key}`)

/** Own, enumerable keys only: `__proto__` or `constructor` in a schema or in args name nothing inherited. */
const own = (o: Schema, key: string): unknown => (Object.prototype.hasOwnProperty.call(o, key) ? o[key] : undefined)

const add = (out: Array<Problem>, path: string, problem: string): void => {
  if (out.length < MAX_PROBLEMS) out.push({ path, problem })
}

const check = (schema: unknown, value: unknown, path: string, depth: number, out: Array<Problem>): void => {
  if (out.length >= MAX_PROBLEMS || depth > MAX_DEPTH || !isRecord(schema)) return
  const say = (problem: string) => add(out, path, problem)

  const type = own(schema, "type")
  const types = typeof type === "string" ? [type] : Array.isArray(type) ? type.filter((t): t is string => typeof t === "string") : []
  if (types.length > 0 && !types.some((t) => fitsType(value, t))) {
    say(`should be ${types.map(kindWord).join(" or ")}`)
    return
  }

  const allowed = own(schema, "enum")
  if (Array.isArray(allowed) && !allowed.some((a) => sameJson(a, value))) {
    say(`should be one of ${allowed.slice(0, 10).map(shown).join(", ")}${allowed.length > 10 ? ", …" : ""}`)
    return
  }
  if (Object.prototype.hasOwnProperty.call(schema, "const") && !sameJson(own(schema, "const"), value)) {
    say(`should be ${shown(own(schema, "const"))}`)
    return
  }

  for (const key of ["anyOf", "oneOf"] as const) {
    const options = own(schema, key)
    if (!Array.isArray(options) || options.length === 0) continue
    const fits = options.some((o) => {
      const inner: Array<Problem> = []
      check(o, value, path, depth + 1, inner)
      return inner.length === 0
    })
    if (!fits) {
      say("does not fit any of the forms the tool accepts")
      return
    }
  }

  if (isRecord(value)) {
    const properties = own(schema, "properties")
    const props = isRecord(properties) ? properties : {}
    const required = own(schema, "required")
    if (Array.isArray(required)) {
      for (const name of required) {
        if (typeof name === "string" && !Object.prototype.hasOwnProperty.call(value, name)) add(out, join(path, name), "is missing (it is required)")
      }
    }
    const extra = own(schema, "additionalProperties")
    for (const key of Object.keys(value)) {
      const sub = own(props, key)
      if (sub !== undefined) check(sub, value[key], join(path, key), depth + 1, out)
      else if (extra === false) add(out, join(path, key), "is not one of its arguments")
      else if (isRecord(extra)) check(extra, value[key], join(path, key), depth + 1, out)
    }
  } else if (Array.isArray(value)) {
    const items = own(schema, "items")
    if (isRecord(items)) value.forEach((v, i) => check(items, v, join(path, i), depth + 1, out))
  }
}

/** Structural equality of two JSON values (for `enum` and `const`). */
const sameJson = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameJson(x, b[i]))
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJson(a[k], b[k]))
  }
  return false
}

/** What is wrong with `value` for `schema` (empty: nothing this checker can see). */
export const checkAgainstSchema = (schema: unknown, value: unknown): ReadonlyArray<Problem> => {
  const out: Array<Problem> = []
  check(schema, value, "", 0, out)
  return out
}

/** The problems as one sentence for people: "code: should be text; extra: is not one of its arguments". */
export const describeProblems = (problems: ReadonlyArray<Problem>): string =>
  problems.map((p) => (p.path === "" ? `the arguments ${p.problem}` : `${p.path}: ${p.problem}`)).join("; ")
