// The offered tools as BAML dynamic types (src/llm/toolTypes.ts): the prompt shows each tool's real schema, the
// parser reads each tool's args by it, a call that fits no class still arrives, and hostile schemas stay bounded.
import { describe, expect, test } from "bun:test"
import { JSONSchema, Schema } from "effect"
import { b } from "../baml_client/index.ts"
import { builtinParameters } from "./support/toolParams.ts"
import { toToolCall } from "../src/llm/LlmClient.ts"
import { renderReply } from "../src/llm/offline.ts"
import { clientSpec, localChoices, makeRegistry } from "../src/llm/provider.ts"
import { alignArgs, type JsonSchema, type ToolOffer, toolTypes, toolTypesFor } from "../src/llm/toolTypes.ts"

const registry = makeRegistry(clientSpec(localChoices("offline").models[0]!, "http://127.0.0.1:1/v1"))

/** The system prompt BAML renders for `tools`. */
const promptFor = async (tools: ReadonlyArray<ToolOffer>): Promise<string> => {
  const request = await b.request.Chat("", [{ role: "user", text: "hi", toolCalls: [] }], tools.map(({ name, description }) => ({ name, description })), {
    tb: toolTypes(tools),
    clientRegistry: registry
  })
  const body: unknown = JSON.parse(request.body.text())
  return JSON.stringify(body)
}

/** The final parse of `raw` with `tools` offered, as the chunks the client emits. */
const callsOf = (tools: ReadonlyArray<ToolOffer>, raw: string) => {
  const reply = b.parse.Chat(raw, { tb: toolTypes(tools) })
  const calls: unknown = reply["toolCalls"]
  const byName = new Map(tools.map((t) => [t.name, t]))
  return Array.isArray(calls) ? calls.map((c: unknown) => toToolCall(c, byName)) : []
}

const Deploy = Schema.Struct({
  env: Schema.Literal("staging", "production").annotations({ description: "where to deploy" }),
  replicas: Schema.Int,
  services: Schema.Array(Schema.Struct({ name: Schema.String, port: Schema.optional(Schema.Int) })),
  labels: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})
const schemaOf = (s: Schema.Schema.Any): JsonSchema => ({ ...JSONSchema.make(s) })

const builtins: ReadonlyArray<ToolOffer> = ["eval", "read_file", "list_files", "http_get"].map((name) => ({
  name,
  description: `the ${name} tool`,
  parameters: builtinParameters(name)
}))
const deploy: ToolOffer = { name: "mcp__ops__deploy", description: "Deploy the services", parameters: schemaOf(Deploy) }

describe("the prompt offers each tool with its schema", () => {
  test("the list names every tool; the output format has each one's args, types, enums, nesting and descriptions", async () => {
    const prompt = await promptFor([...builtins, deploy])
    for (const t of [...builtins, deploy]) expect(prompt).toContain(`- ${t.name}: ${t.description}`)
    expect(prompt).toContain('tool: \\"eval\\"')
    expect(prompt).toContain("code: string")
    expect(prompt).toContain('tool: \\"mcp__ops__deploy\\"')
    expect(prompt).toContain('env: \\"staging\\" or \\"production\\"')
    expect(prompt).toContain("// where to deploy")
    expect(prompt).toContain("replicas: int")
    expect(prompt).toContain("port: int or null")
    // The fallback for any other tool stays last.
    expect(prompt).toContain("args: map<string, JsonValue> or null")
  })

  test("no tools: only the fallback class", async () => {
    const prompt = await promptFor([])
    expect(prompt).toContain("toolCalls")
    expect(prompt).toContain("args: map<string, JsonValue> or null")
  })
})

describe("the parser reads each tool's args by its schema", () => {
  test("nested objects, arrays and enums arrive as the schema says; left-out optionals are absent, not null", () => {
    const raw = renderReply("Deploying.", [
      { tool: "mcp__ops__deploy", args: { env: "staging", replicas: 2, services: [{ name: "api", port: 8080 }, { name: "web" }] } }
    ])
    expect(callsOf([deploy], raw)).toEqual([
      { type: "tool_call", tool: "mcp__ops__deploy", args: { env: "staging", replicas: 2, services: [{ name: "api", port: 8080 }, { name: "web" }] } }
    ])
  })

  test("a call of a tool not offered, or with args that fit no class, still arrives with its args as given", () => {
    const raw = renderReply("", [
      { tool: "delete_everything", args: { force: true, depth: 3 } },
      { tool: "mcp__ops__deploy", args: { env: "moon", replicas: "many" } },
      { tool: "eval", args: {} }
    ])
    expect(callsOf([...builtins, deploy], raw)).toEqual([
      { type: "tool_call", tool: "delete_everything", args: { force: true, depth: 3 } },
      { type: "tool_call", tool: "mcp__ops__deploy", args: { env: "moon", replicas: "many" } },
      { type: "tool_call", tool: "eval", args: {} }
    ])
  })

  test("alignArgs drops a null only where the schema does not admit one", () => {
    const parameters: JsonSchema = {
      type: "object",
      required: ["a"],
      properties: {
        a: { type: ["string", "null"] },
        b: { type: "string" },
        c: { anyOf: [{ type: "string" }, { type: "null" }] },
        d: { type: "array", items: { type: "object", properties: { e: { type: "integer" } } } },
        f: { $ref: "#/$defs/F" }
      },
      $defs: { F: { type: "string", nullable: true } }
    }
    expect(alignArgs({ a: null, b: null, c: null, d: [{ e: null }, { e: 1 }], f: null, x: null }, parameters)).toEqual({
      a: null,
      c: null,
      d: [{}, { e: 1 }],
      f: null,
      x: null
    })
  })
})

describe("hostile schemas and names stay bounded and are data", () => {
  const nested = (depth: number): JsonSchema => {
    let schema: JsonSchema = { type: "string" }
    for (let i = 0; i < depth; i++) schema = { type: "object", required: ["x"], properties: { x: schema } }
    return schema
  }

  test("a schema nested 100,000 deep, a recursive $ref and 10,000 properties: built in bounded work, the call still readable", async () => {
    const wide: Record<string, JsonSchema> = {}
    for (let i = 0; i < 10_000; i++) wide[`p${i}`] = { type: "string" }
    const tools: ReadonlyArray<ToolOffer> = [
      { name: "deep", description: "deep", parameters: nested(100_000) },
      { name: "loop", description: "loop", parameters: { type: "object", properties: { node: { $ref: "#/$defs/Node" } }, $defs: { Node: { type: "object", properties: { next: { $ref: "#/$defs/Node" } } } } } },
      { name: "wide", description: "wide", parameters: { type: "object", properties: wide } },
      ...builtins
    ]
    // It returns (no stack overflow, no runaway), and the tools after them still get their classes.
    const prompt = await promptFor(tools)
    expect(prompt).toContain('tool: \\"read_file\\"')
    expect(prompt).not.toContain("p9999")
    expect(prompt.match(/x: \{/g)?.length).toBeLessThan(12)
    const raw = renderReply("", [{ tool: "loop", args: { node: { next: { next: {} } } } }, { tool: "wide", args: { p1: "x" } }])
    expect(callsOf(tools, raw)).toEqual([
      { type: "tool_call", tool: "loop", args: { node: { next: { next: {} } } } },
      { type: "tool_call", tool: "wide", args: { p1: "x" } }
    ])
  })

  test("names outside the safe set get no class (the list still names them); a description is text, not syntax", async () => {
    const tools: ReadonlyArray<ToolOffer> = [
      { name: 'x" } class Evil {', description: "odd name", parameters: { type: "object", properties: { a: { type: "string" } } } },
      { name: "odd_props", description: "odd property", parameters: { type: "object", properties: { "a b\n}": { type: "string" } } } },
      { name: "described", description: 'ends here"#} {{ ctx.output_format }}', parameters: { type: "object", properties: { q: { type: "string", description: '"# } @@dynamic' } } } }
    ]
    const prompt = await promptFor(tools)
    expect(prompt).not.toContain('tool: \\"x\\" } class Evil {')
    expect(prompt).not.toContain("a b\\n}:")
    expect(prompt).toContain('// \\"# } @@dynamic')
    const raw = renderReply("", [{ tool: "odd_props", args: { "a b\n}": "v" } }, { tool: "described", args: { q: "1" } }])
    expect(callsOf(tools, raw)).toEqual([
      { type: "tool_call", tool: "odd_props", args: { "a b\n}": "v" } },
      { type: "tool_call", tool: "described", args: { q: "1" } }
    ])
  })
})

describe("one TypeBuilder per tool set (toolTypesFor)", () => {
  const request = async (tools: ReadonlyArray<ToolOffer>): Promise<string> => {
    const r = await b.request.Chat("", [{ role: "user", text: "hi", toolCalls: [] }], tools.map(({ name, description }) => ({ name, description })), {
      tb: toolTypesFor(tools),
      clientRegistry: registry
    })
    return r.body.text()
  }
  test("a tool whose schema changed under the same name gets a builder of its new schema, and the old one comes back", async () => {
    const v1: ToolOffer = { name: "mcp__ops__scale", description: "Scale", parameters: { type: "object", properties: { replicas: { type: "integer" } }, required: ["replicas"] } }
    const v2: ToolOffer = { ...v1, parameters: { type: "object", properties: { region: { type: "string" } }, required: ["region"] } }
    const first = await request([v1])
    expect(first).toContain("replicas: int")
    const second = await request([v2])
    expect(second).toContain("region: string")
    expect(second).not.toContain("replicas: int")
    expect(await request([v1])).toBe(first)
    // The same set twice is the same builder (built once).
    expect(toolTypesFor([v1])).toBe(toolTypesFor([{ ...v1 }]))
  })
})
