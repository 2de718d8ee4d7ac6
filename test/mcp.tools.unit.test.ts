// The pure MCP translation: a tools/list answer into guarded catalogue entries (names, descriptions, schemas,
// validators that never throw or hang) and a tools/call answer into a bounded result.
import { describe, expect, test } from "bun:test"
import { Either } from "effect"
import type { McpServerConfig } from "../src/mcp/config.ts"
import { jsonProblem, makeSchemaCompiler, riskyPattern } from "../src/mcp/jsonSchema.ts"
import { mcpLimits } from "../src/mcp/limits.ts"
import { callResultOf, toolsFromListing } from "../src/mcp/tools.ts"

const server: McpServerConfig = { transport: "stdio", name: "srv", command: "x", args: [], policy: "auto" }
const limits = mcpLimits({ maxOutputChars: 100, maxStructuredChars: 200, maxDescriptionChars: 50 })
const objectSchema = (properties: Record<string, object>, required: Array<string> = []) => ({ type: "object", properties, required })

const compile = (schema: Record<string, unknown>) => {
  const compiled = makeSchemaCompiler(limits.schema).compile(schema)
  if (Either.isLeft(compiled)) throw new Error(compiled.left)
  return compiled.right
}

describe("tools from a listing", () => {
  test("names are mcp__<server>__<tool>, with the server's policy and a capped, clean description", () => {
    const listing = toolsFromListing(server, [{ name: "search", description: `find\u0007 ${"x".repeat(100)}`, inputSchema: { type: "object" } }], limits)
    const [tool] = listing.tools
    expect(tool).toMatchObject({ name: "mcp__srv__search", server: "srv", tool: "search", policy: "auto" })
    expect(tool!.description.length).toBe(50)
    expect(tool!.description.startsWith("find x")).toBe(true)
    expect(tool!.description.endsWith("…")).toBe(true)
  })

  test("what is skipped is counted in all, and the first few are shown", () => {
    const listed = Array.from({ length: 100 }, (_, i) => ({ name: `bad.${i}`, inputSchema: { type: "object" } }))
    const listing = toolsFromListing(server, listed, limits)
    expect(listing.tools).toEqual([])
    expect(listing.skippedCount).toBe(100)
    expect(listing.skipped.length).toBe(20)
  })
})

describe("args validators", () => {
  test("a call whose args fail the schema gets a readable error; good args come back unchanged", () => {
    const validate = compile(objectSchema({ a: { type: "number" }, b: { type: "number", default: 3 } }, ["a"]))
    expect(validate({ a: "one" })).toEqual(Either.left("args/a must be number"))
    expect(validate({})).toEqual(Either.left("args must have required property 'a'"))
    expect(validate([1])).toEqual(Either.left("args must be a JSON object"))
    const args = { a: 1 }
    expect(validate(args)).toEqual(Either.right({ a: 1 }))
    // No defaults filled in: validation is pure.
    expect(args).toEqual({ a: 1 })
  })

  test("a recursive schema with deep args is an error, not a crash", () => {
    const validate = compile({ type: "object", properties: { next: { $ref: "#" } } })
    let args: Record<string, unknown> = {}
    for (let i = 0; i < 100_000; i++) args = { next: args }
    expect(Either.isLeft(validate(args))).toBe(true)
  })

  test("a risky pattern is not run (the server checks it); a safe one is, each pattern its own", () => {
    const compiler = makeSchemaCompiler(limits.schema)
    const redos = compiler.compile(objectSchema({ s: { type: "string", pattern: "^(a+)+$" } }))
    const slug = compiler.compile(objectSchema({ s: { type: "string", pattern: "^[a-z]+$" } }))
    if (Either.isLeft(redos) || Either.isLeft(slug)) throw new Error("did not compile")
    // "b" does not match: accepted only because the pattern is not run (a long "aaa…!" would backtrack for ever).
    expect(Either.isRight(redos.right({ s: "b" }))).toBe(true)
    expect(slug.right({ s: "Not A Slug" })).toEqual(Either.left('args/s must match pattern "^[a-z]+$"'))
    expect(Either.isRight(slug.right({ s: "slug" }))).toBe(true)
    const digits = compiler.compile(objectSchema({ s: { type: "string", pattern: "^[0-9]+$" } }))
    if (Either.isLeft(digits)) throw new Error("did not compile")
    expect(digits.right({ s: "slug" })).toEqual(Either.left('args/s must match pattern "^[0-9]+$"'))
  })

  test("riskyPattern flags nested repetition, alternation under repetition and back-references only", () => {
    expect(riskyPattern("^(a+)+$")).toBeDefined()
    expect(riskyPattern("^(a|aa)*$")).toBeDefined()
    expect(riskyPattern("((ab)*c)+")).toBeDefined()
    expect(riskyPattern("(a)\\1")).toBeDefined()
    expect(riskyPattern("x".repeat(300))).toBeDefined()
    expect(riskyPattern("^[a-z0-9-]+$")).toBeUndefined()
    expect(riskyPattern("^\\d{4}-\\d{2}-\\d{2}$")).toBeUndefined()
    expect(riskyPattern("^(ab)+[(+)]$")).toBeUndefined()
  })

  test("schemas that are too deep, too long, not objects, async or broken are refused with a reason", () => {
    const compiler = makeSchemaCompiler({ maxDepth: 8, maxChars: 1000 })
    let deep: Record<string, unknown> = { type: "string" }
    for (let i = 0; i < 20; i++) deep = { type: "object", properties: { x: deep } }
    const reason = (schema: Record<string, unknown>) => Either.match(compiler.compile(schema), { onLeft: (e) => e, onRight: () => "compiled" })
    expect(reason(deep)).toContain("nested deeper than 8 levels")
    expect(reason({ type: "object", description: "d".repeat(2000) })).toContain("longer than 1000 characters")
    expect(reason({ type: "array" })).toContain(`"type": "object"`)
    expect(reason({ type: "object", $async: true })).toContain("$async")
    expect(reason({ type: "object", properties: { a: { $ref: "http://example.com/schema.json" } } })).toContain("does not compile")
  })

  test("jsonProblem walks without recursion", () => {
    let deep: unknown = 1
    for (let i = 0; i < 1_000_000; i++) deep = [deep]
    expect(jsonProblem(deep, { maxDepth: 32, maxChars: 10_000_000 })).toBe("nested deeper than 32 levels")
  })
})

describe("call results", () => {
  test("text blocks are joined; other blocks are described, never inlined", () => {
    const result = callResultOf(
      {
        content: [
          { type: "text", text: "one" },
          { type: "image", mimeType: "image/png", data: "AAAA" },
          { type: "resource_link", uri: "file:///a", name: "a" },
          { type: "resource", resource: { uri: "file:///b", text: "bee" } },
          { type: "hologram" },
          "junk"
        ]
      },
      mcpLimits()
    )
    expect(result.text).toBe("one\n[image image/png, about 3 bytes]\n[resource link file:///a (a)]\n[resource file:///b]\nbee\n[hologram content]\n[unreadable content]")
    expect(result).toMatchObject({ isError: false, truncated: false })
  })

  test("text over the cap is cut and marked; structured content over its cap is dropped and marked", () => {
    const long = callResultOf({ content: [{ type: "text", text: "y".repeat(1000) }] }, limits)
    expect(long).toEqual({ text: "y".repeat(100), isError: false, truncated: true })
    const huge = callResultOf({ content: [{ type: "text", text: "ok" }], structuredContent: { blob: "z".repeat(1000) } }, limits)
    expect(huge).toEqual({ text: "ok", isError: false, truncated: true })
  })

  test("structured content alone is also given as text; isError is kept", () => {
    expect(callResultOf({ structuredContent: { n: 1 }, isError: true }, limits)).toEqual({
      text: `{"n":1}`,
      structured: { n: 1 },
      isError: true,
      truncated: false
    })
  })
})
