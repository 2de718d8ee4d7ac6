/**
 * JSON Schemas from MCP servers, which are untrusted: a depth/size guard for any JSON that comes in, and a compiler
 * (Ajv) into pure synchronous args validators that neither throw nor hang, whatever the schema says.
 */
import { Ajv, type CodeOptions, type ErrorObject } from "ajv"
import { Either } from "effect"
import type { JsonObject } from "../domain/Event.ts"

/** Bounds of untrusted JSON (a schema, structured content). */
export interface JsonBounds {
  /** Nesting of objects and arrays. */
  readonly maxDepth: number
  /** Characters of its JSON text. */
  readonly maxChars: number
}

export const isJsonObject = (u: unknown): u is JsonObject => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Why `value` is not acceptable JSON within `bounds` (too deep, too long), or undefined when it is. The walk is
 * iterative and stops at the first problem, so a hostile value cannot overflow the stack here.
 */
export const jsonProblem = (value: unknown, bounds: JsonBounds): string | undefined => {
  const stack: Array<readonly [unknown, number]> = [[value, 0]]
  let nodes = 0
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [current, depth] = item
    // Every node costs at least one character, so this bounds the walk before JSON.stringify runs.
    if (++nodes > bounds.maxChars) return `longer than ${bounds.maxChars} characters`
    if (typeof current !== "object" || current === null) continue
    if (depth >= bounds.maxDepth) return `nested deeper than ${bounds.maxDepth} levels`
    for (const child of Array.isArray(current) ? current : Object.values(current)) stack.push([child, depth + 1])
  }
  const text = JSON.stringify(value)
  if (text === undefined) return "not JSON"
  return text.length > bounds.maxChars ? `longer than ${bounds.maxChars} characters` : undefined
}

/** Canonical args (the input itself; validation never changes it) or a readable error. Pure, synchronous. */
export type ArgsValidator = (args: unknown) => Either.Either<JsonObject, string>

type RegExpEngine = NonNullable<CodeOptions["regExp"]>
type RegExpLike = ReturnType<RegExpEngine> & { readonly toString: () => string }

/** Patterns longer than this are not run by us (the server still checks them). */
const maxPatternChars = 256
/** Strings longer than this are not matched against a pattern by us (the server still checks them). */
const maxMatchedChars = 4096

/**
 * Why a pattern could backtrack catastrophically (a repeated group that itself repeats or alternates, a back-reference),
 * or undefined. A heuristic on purpose: a pattern it flags is only skipped by our check, never run.
 */
export const riskyPattern = (pattern: string): string | undefined => {
  if (pattern.length > maxPatternChars) return `longer than ${maxPatternChars} characters`
  // Per open group: whether it holds a quantifier or an alternation.
  const groups: Array<{ inner: boolean }> = []
  let closedInner = false
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === "\\") {
      const next = pattern[i + 1] ?? ""
      if (/[1-9]/.test(next) || next === "k") return "back-references are not checked"
      i++
      closedInner = false
      continue
    }
    if (c === "[") {
      // Skip a character class (its contents cannot nest quantifiers).
      for (i++; i < pattern.length && pattern[i] !== "]"; i++) if (pattern[i] === "\\") i++
      closedInner = false
      continue
    }
    if (c === "(") {
      groups.push({ inner: false })
      closedInner = false
      continue
    }
    if (c === ")") {
      closedInner = groups.pop()?.inner ?? false
      // A group with a repetition inside counts as one for its enclosing group.
      const parent = groups.at(-1)
      if (parent !== undefined && closedInner) parent.inner = true
      continue
    }
    const repeats = c === "*" || c === "+" || (c === "{" && /^\{\d+(,\d*)?\}/.test(pattern.slice(i)))
    if (repeats && closedInner) return "a repeated group that itself repeats or alternates"
    if (c === "*" || c === "+" || c === "?" || c === "{" || c === "|") {
      const current = groups.at(-1)
      if (current !== undefined) current.inner = true
    }
    closedInner = false
  }
  return undefined
}

// Ajv's hook for `pattern` / `patternProperties`: risky or invalid patterns, and very long strings, match by default.
// Ajv shares compiled patterns by their toString(), so each one needs its own.
const safeRegExp: RegExpEngine = Object.assign(
  (pattern: string, flags: string): RegExpLike => {
    const unchecked: RegExpLike = { test: () => true, toString: () => `unchecked:${pattern}` }
    if (riskyPattern(pattern) !== undefined) return unchecked
    const compiled = Either.try(() => new RegExp(pattern, flags)).pipe(Either.orElse(() => Either.try(() => new RegExp(pattern))))
    if (Either.isLeft(compiled)) return unchecked
    const regExp = compiled.right
    return { test: (s: string) => s.length > maxMatchedChars || regExp.test(s), toString: () => regExp.toString() }
  },
  { code: "safeRegExp" }
)

const describe = (errors: ReadonlyArray<ErrorObject> | null | undefined): string =>
  (errors ?? [])
    .slice(0, 5)
    .map((error) => `${error.instancePath === "" ? "args" : `args${error.instancePath}`} ${error.message ?? "is invalid"}`)
    .join("; ") || "args do not match the schema"

/** Compiles schemas of one listing; one Ajv per listing, so the memory of an old listing goes with it. */
export interface SchemaCompiler {
  /** A validator for args of `schema`, or why the schema cannot be used. Never throws. */
  readonly compile: (schema: JsonObject) => Either.Either<ArgsValidator, string>
}

/**
 * A fresh compiler: Ajv without remote refs, formats, defaults, coercion or logging, with the pattern guard. Schemas
 * register their `$id` in it (a root `$ref: "#"` needs that), so two tools of one listing with the same `$id` leave
 * the second out.
 */
export const makeSchemaCompiler = (bounds: JsonBounds): SchemaCompiler => {
  const ajv = new Ajv({
    strict: false,
    validateSchema: false,
    validateFormats: false,
    allErrors: false,
    useDefaults: false,
    coerceTypes: false,
    removeAdditional: false,
    logger: false,
    code: { regExp: safeRegExp }
  })
  return {
    compile: (schema) => {
      const problem = jsonProblem(schema, bounds)
      if (problem !== undefined) return Either.left(`its input schema is ${problem}`)
      if (schema.type !== "object") return Either.left(`its input schema must have "type": "object"`)
      const compiled = Either.try({
        try: () => ajv.compile(schema),
        catch: (error) => `its input schema does not compile: ${error instanceof Error ? error.message : String(error)}`
      })
      if (Either.isLeft(compiled)) return Either.left(compiled.left)
      const validate = compiled.right
      // An async schema answers with a Promise, which is truthy: it would accept anything.
      if ("$async" in validate && validate.$async === true) return Either.left(`its input schema is asynchronous ($async)`)
      return Either.right((args) => {
        if (!isJsonObject(args)) return Either.left("args must be a JSON object")
        const outcome = Either.try(() => validate(args) === true)
        if (Either.isLeft(outcome)) return Either.left("args could not be checked against the schema (too deep?)")
        return outcome.right ? Either.right(args) : Either.left(describe(validate.errors))
      })
    }
  }
}
