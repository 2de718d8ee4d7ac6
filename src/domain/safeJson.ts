/**
 * The one guard untrusted JSON passes on its way into the process: a byte limit, a nesting-depth limit and finite
 * numbers, checked by one linear scan before `JSON.parse` or any Schema sees the text; and one bounded describer of
 * Schema errors that never renders the input value. Pure and browser-safe (no Node or Bun APIs).
 */
import { Data, Either, Option, ParseResult, type Schema, SchemaAST } from "effect"

/** Deepest nesting of arrays and objects accepted anywhere (a websocket frame, an HTTP body, a tape line). */
export const MAX_JSON_DEPTH = 64

/** What a piece of JSON text may be. */
export interface JsonLimits {
  /** Most UTF-8 bytes of the text. */
  readonly maxBytes: number
  /** Deepest nesting of `[` and `{`; default MAX_JSON_DEPTH. */
  readonly maxDepth?: number
}

/**
 * Untrusted JSON was refused: `too_large` (over the byte limit), `too_deep` (nested past the depth limit),
 * `bad_number` (a number that is not finite, such as `1e309`), `not_json` (not JSON text) or `invalid` (JSON that
 * does not have the expected shape). `message` is bounded and never contains the input value.
 */
export class BadJson extends Data.TaggedError("BadJson")<{
  readonly reason: "too_large" | "too_deep" | "bad_number" | "not_json" | "invalid"
  readonly message: string
}> {}

const OPEN_BRACE = 123
const OPEN_BRACKET = 91
const CLOSE_BRACE = 125
const CLOSE_BRACKET = 93
const QUOTE = 34
const BACKSLASH = 92
const MINUS = 45
const ZERO = 48
const NINE = 57

/** Whether `c` may continue a JSON number token (digits, sign, point, exponent). */
const inNumber = (c: number): boolean =>
  (c >= ZERO && c <= NINE) || c === 43 /* + */ || c === MINUS || c === 46 /* . */ || c === 101 /* e */ || c === 69 /* E */

/**
 * Checks `text` against `limits` in one pass, without parsing it: UTF-8 size, nesting depth (strings skipped) and
 * numbers that would parse to ±Infinity. Answers the first fault, or undefined. Malformed JSON is left to the parser.
 */
export const checkJsonText = (text: string, limits: JsonLimits): BadJson | undefined => {
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH
  // Every UTF-16 unit is at least one UTF-8 byte: a text longer than the limit in units is over it in bytes.
  if (text.length > limits.maxBytes) return tooLarge(limits.maxBytes)
  let bytes = 0
  let depth = 0
  let inString = false
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdbff ? 2 : c >= 0xdc00 && c <= 0xdfff ? 2 : 3
    if (inString) {
      if (c === BACKSLASH) {
        i++
        bytes += 1
      } else if (c === QUOTE) inString = false
      continue
    }
    if (c === QUOTE) inString = true
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return new BadJson({ reason: "too_deep", message: `JSON nested deeper than ${maxDepth} levels refused` })
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
    else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      let j = i + 1
      let exponent = false
      while (j < n && inNumber(text.charCodeAt(j))) {
        const d = text.charCodeAt(j)
        if (d === 101 || d === 69) exponent = true
        j++
      }
      // Only an exponent or a very long literal can overflow a double; the rest never reach Infinity.
      if (exponent || j - i > 300) {
        const value = Number(text.slice(i, j))
        if (value === Infinity || value === -Infinity) {
          return new BadJson({ reason: "bad_number", message: `a number out of range (not finite) at offset ${i} refused` })
        }
      }
      bytes += j - i - 1
      i = j - 1
    }
  }
  return bytes > limits.maxBytes ? tooLarge(limits.maxBytes) : undefined
}

const tooLarge = (maxBytes: number) => new BadJson({ reason: "too_large", message: `JSON over ${maxBytes} bytes refused` })

/** Parses untrusted JSON text after `checkJsonText`; the parser's own message is bounded. */
export const parseJsonText = (text: string, limits: JsonLimits): Either.Either<unknown, BadJson> => {
  const refused = checkJsonText(text, limits)
  if (refused !== undefined) return Either.left(refused)
  try {
    return Either.right(JSON.parse(text))
  } catch (cause) {
    return Either.left(new BadJson({ reason: "not_json", message: `not valid JSON (${oneLine(describeThrown(cause), 120)})` }))
  }
}

/**
 * A decoder of untrusted JSON text into `schema`: the guard, `JSON.parse`, then the Schema, whose errors are
 * described by `describeParseError` (bounded, without the value).
 */
export const decodeJsonText = <A, I>(schema: Schema.Schema<A, I>, limits: JsonLimits, options?: SchemaAST.ParseOptions) => {
  const decode = ParseResult.decodeUnknownEither(schema, options)
  return (text: string): Either.Either<A, BadJson> =>
    Either.flatMap(parseJsonText(text, limits), (value) =>
      Either.mapLeft(decode(value), (error) => new BadJson({ reason: "invalid", message: describeParseError(error) }))
    )
}

/** How much of a Schema error `describeParseError` shows. */
export interface DescribeLimits {
  /** Most issues listed (default 5). */
  readonly issues?: number
  /** Deepest issue followed (default 32). */
  readonly depth?: number
  /** Most characters of the whole description (default 600). */
  readonly chars?: number
}

/**
 * Describes a Schema ParseError as `path: expected …; path: is missing` — paths and expectations only, never the
 * input value, bounded in issues, depth and length, so any input gives a short message and a bounded amount of work.
 */
export const describeParseError = (error: ParseResult.ParseError | ParseResult.ParseIssue, limits: DescribeLimits = {}): string => {
  const maxIssues = limits.issues ?? 5
  const maxDepth = limits.depth ?? 32
  const maxChars = limits.chars ?? 600
  const found: Array<string> = []
  let more = false
  const add = (path: ReadonlyArray<string>, message: string) => {
    if (found.length >= maxIssues) {
      more = true
      return
    }
    found.push(path.length > 0 ? `${path.join(".")}: ${message}` : message)
  }
  const walk = (issue: ParseResult.ParseIssue, path: ReadonlyArray<string>, depth: number): void => {
    if (more) return
    if (depth > maxDepth) return add(path, "(nested too deep to describe)")
    switch (issue._tag) {
      case "Type":
        // The `undefined` member of an optional field's union says nothing the other members do not.
        if (issue.ast._tag === "UndefinedKeyword" && path.length > 0) return
        return add(path, annotated(issue) ?? (issue.message !== undefined ? oneLine(issue.message, 160) : `expected ${expected(issue.ast)}`))
      case "Missing":
        return add(path, "is missing")
      case "Unexpected":
        return add(path, "is unexpected")
      case "Forbidden":
        return add(path, "is forbidden")
      case "Pointer": {
        const keys: ReadonlyArray<PropertyKey> = isNonEmpty(issue.path) ? issue.path : [issue.path]
        return walk(issue.issue, [...path, ...keys.map(pathKey)], depth + 1)
      }
      case "Refinement":
      case "Transformation": {
        const message = annotated(issue)
        return message !== undefined ? add(path, message) : walk(issue.issue, path, depth + 1)
      }
      case "Composite": {
        const message = annotated(issue)
        if (message !== undefined) return add(path, message)
        const issues: ReadonlyArray<ParseResult.ParseIssue> = isNonEmpty(issue.issues) ? issue.issues : [issue.issues]
        for (const inner of issues) {
          if (more) return
          walk(inner, path, depth + 1)
        }
        return
      }
      default: {
        const _exhaustive: never = issue
        return _exhaustive
      }
    }
  }
  walk(ParseResult.isParseError(error) ? error.issue : error, [], 0)
  const text = found.join("; ") + (more ? "; (more issues not shown)" : "")
  return oneLine(text === "" ? "invalid value" : text, maxChars)
}

const isNonEmpty = <A>(x: A | ReadonlyArray<A>): x is ReadonlyArray<A> => Array.isArray(x)

/** A key of a path, short and quoted when it is not a plain name or index (keys come from the input). */
const pathKey = (key: PropertyKey): string => {
  if (typeof key === "number") return String(key)
  const s = typeof key === "symbol" ? String(key.description ?? "symbol") : key
  return /^[A-Za-z_$][A-Za-z0-9_$]{0,39}$/.test(s) || /^\d{1,10}$/.test(s) ? s : quote(s, 40)
}

/** What the schema expected at an issue, from its annotations or its AST, bounded. */
const expected = (ast: SchemaAST.AST): string => {
  if (SchemaAST.isRefinement(ast)) {
    const named = Option.firstSomeOf([
      SchemaAST.getDescriptionAnnotation(ast),
      SchemaAST.getTitleAnnotation(ast),
      SchemaAST.getIdentifierAnnotation(ast)
    ])
    if (Option.isSome(named)) return oneLine(named.value, 120)
    return expected(ast.from)
  }
  return oneLine(String(ast), 120)
}

/** A schema's own message annotation for an issue, when it has one that is plain text. */
const annotated = (issue: ParseResult.ParseIssue): string | undefined => {
  if (!("ast" in issue)) return undefined
  const annotation = SchemaAST.getMessageAnnotation(issue.ast)
  if (Option.isNone(annotation)) return undefined
  try {
    const out = annotation.value(issue)
    if (typeof out === "string") return oneLine(out, 160)
    if (typeof out === "object" && out !== null && "message" in out && typeof out.message === "string") return oneLine(out.message, 160)
  } catch {
    // A message annotation that throws says nothing useful; fall back to the path and expectation.
  }
  return undefined
}

/** `s` quoted as JSON, cut to `max` characters of content (for echoing short parts of input, such as a type name). */
export const quote = (s: string, max = 60): string =>
  s.length > max ? `${JSON.stringify(s.slice(0, max))}…` : JSON.stringify(s)

/** `s` on one line and at most `max` characters. */
export const oneLine = (s: string, max: number): string => {
  const flat = s.replace(/[\r\n\t]+/g, " ")
  return flat.length > max ? `${flat.slice(0, Math.max(0, max - 1))}…` : flat
}

/** The name and message of anything thrown, bounded, without its stack (for logs and answers). */
export const describeThrown = (thrown: unknown, max = 300): string => {
  if (thrown instanceof Error) return oneLine(`${thrown.name}: ${thrown.message}`, max)
  if (typeof thrown === "string") return oneLine(thrown, max)
  return oneLine(Object.prototype.toString.call(thrown), max)
}
