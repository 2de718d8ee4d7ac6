// The shared JSON guard (issue 10, finding 1): depth, size and finite numbers checked by one scan before parsing,
// and Schema errors described without the value, bounded however large or deep the input.
import { describe, expect, test } from "bun:test"
import { Either, Schema } from "effect"
import { type BadJson, checkJsonText, decodeJsonText, describeParseError, MAX_JSON_DEPTH, parseJsonText } from "../src/domain/safeJson.ts"

const nested = (depth: number, open = "[", close = "]") => open.repeat(depth) + close.repeat(depth)
const reason = (text: string, maxBytes = 1 << 20) => checkJsonText(text, { maxBytes })?.reason ?? "ok"

describe("checkJsonText", () => {
  test("nesting up to the limit passes, one deeper is refused, whatever mix of arrays and objects", () => {
    expect(reason(nested(MAX_JSON_DEPTH))).toBe("ok")
    expect(reason(nested(MAX_JSON_DEPTH + 1))).toBe("too_deep")
    const objects = (d: number) => '{"a":'.repeat(d - 1) + "{}" + "}".repeat(d - 1)
    expect(reason(objects(MAX_JSON_DEPTH))).toBe("ok")
    expect(reason(objects(MAX_JSON_DEPTH + 1))).toBe("too_deep")
    expect(reason(nested(50_000))).toBe("too_deep")
    expect(checkJsonText(nested(5), { maxBytes: 100, maxDepth: 4 })?.reason).toBe("too_deep")
  })

  test("brackets inside strings do not count, escaped quotes do not end them", () => {
    expect(reason(JSON.stringify({ s: "[".repeat(10_000) }))).toBe("ok")
    expect(reason(JSON.stringify({ s: 'a\\"[[[' + "{".repeat(100) }))).toBe("ok")
    // A string ending in a backslash: the next quote ends it, and the brackets after it count again.
    expect(reason(`["\\\\",${nested(MAX_JSON_DEPTH)}]`)).toBe("too_deep")
    expect(reason(`["\\\\",${nested(MAX_JSON_DEPTH - 1)}]`)).toBe("ok")
  })

  test("the byte limit counts UTF-8 bytes, not characters", () => {
    expect(checkJsonText('"aaaa"', { maxBytes: 6 })).toBeUndefined()
    expect(checkJsonText('"aaaa"', { maxBytes: 5 })?.reason).toBe("too_large")
    // é is 2 bytes, 😀 is 4: 2 quotes + 2 + 4 = 8 bytes in 5 UTF-16 units.
    expect(checkJsonText('"é😀"', { maxBytes: 8 })).toBeUndefined()
    expect(checkJsonText('"é😀"', { maxBytes: 7 })?.reason).toBe("too_large")
    expect(checkJsonText('"€"', { maxBytes: 4 })?.reason).toBe("too_large")
  })

  test("numbers that parse to Infinity are refused; large finite ones, tiny ones and digits in strings are not", () => {
    expect(reason('{"at":1e309}')).toBe("bad_number")
    expect(reason("[-1E+400]")).toBe("bad_number")
    expect(reason("1" + "0".repeat(400))).toBe("bad_number")
    expect(reason('{"at":1e308}')).toBe("ok")
    expect(reason('{"at":1e-400}')).toBe("ok")
    expect(reason('{"at":"1e309"}')).toBe("ok")
    expect(reason("[true,false,null,-0.5e3]")).toBe("ok")
  })
})

describe("parseJsonText / decodeJsonText", () => {
  const Frame = Schema.Struct({ type: Schema.Literal("hello"), session: Schema.NullOr(Schema.String.pipe(Schema.maxLength(10))) })
  const decode = decodeJsonText(Frame, { maxBytes: 1 << 20 })

  test("each refusal is typed, and its message is one short line", () => {
    const cases: ReadonlyArray<readonly [string, BadJson["reason"]]> = [
      [`{"type":"hello","session":${nested(20_000)}}`, "too_deep"],
      ['{"type":"hello","session":null,"x":1e999}', "bad_number"],
      ["{nope", "not_json"],
      ['{"type":"hello","session":12}', "invalid"],
      ["x".repeat((1 << 20) + 1), "too_large"]
    ]
    for (const [text, why] of cases) {
      const r = decode(text)
      expect(Either.isLeft(r) && r.left.reason).toBe(why)
      if (Either.isLeft(r)) {
        expect(r.left.message.length).toBeLessThan(300)
        expect(r.left.message).not.toContain("\n")
      }
    }
    expect(Either.getOrThrow(decode('{"type":"hello","session":"s1"}'))).toEqual({ type: "hello", session: "s1" })
    expect(Either.getOrThrow(parseJsonText("[1,2]", { maxBytes: 10 }))).toEqual([1, 2])
  })
})

describe("describeParseError", () => {
  const issuesOf = <A, I>(schema: Schema.Schema<A, I>, value: unknown) => {
    const r = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(value)
    if (Either.isRight(r)) throw new Error("expected a failure")
    return r.left
  }

  test("names paths and expectations, never the value; a key from the input is cut short", () => {
    const secret = "s3cret-".repeat(100_000)
    const error = issuesOf(Schema.Struct({ code: Schema.String, n: Schema.Number }), { code: 5, n: secret, [secret]: 1 })
    const text = describeParseError(error)
    expect(text).toContain("code: expected string")
    expect(text).toContain("n: expected number")
    expect(text).toContain("is unexpected")
    expect(text).not.toContain(secret.slice(0, 41))
    expect(text.length).toBeLessThanOrEqual(600)
  })

  test("a value too deep for Effect's own formatters costs a short message", () => {
    let deep: unknown = "leaf"
    for (let i = 0; i < 20_000; i++) deep = [deep]
    expect(describeParseError(issuesOf(Schema.Struct({ code: Schema.String }), { code: deep }))).toBe("code: expected string")
  })

  test("many issues are bounded in count and length; deep issue trees in depth", () => {
    const many = issuesOf(Schema.Array(Schema.String), Array.from({ length: 10_000 }, (_, i) => i))
    const text = describeParseError(many)
    expect(text.split("; ").length).toBeLessThanOrEqual(6)
    expect(text).toContain("(more issues not shown)")
    type Tree = { readonly next?: Tree | undefined; readonly leaf?: string | undefined }
    const Tree: Schema.Schema<Tree> = Schema.Struct({ next: Schema.optional(Schema.suspend(() => Tree)), leaf: Schema.optional(Schema.String) })
    let value: unknown = { leaf: 1 }
    for (let i = 0; i < 200; i++) value = { next: value }
    const deep = describeParseError(issuesOf(Tree, value), { depth: 20 })
    expect(deep).toContain("(nested too deep to describe)")
    expect(deep.length).toBeLessThanOrEqual(600)
  })
})
