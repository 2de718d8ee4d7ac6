/**
 * Your own agent (issue 12), on the real server process: a config file in a folder of its own that imports
 * "agent-tape", with a user tool whose policy function picks auto or ask per call, a Standard Schema tool, and an MCP
 * server that is not ours (@modelcontextprotocol/server-everything over stdio). A scripted model calls them; the
 * tape, /api/tools and the start-up errors of bad configs are checked.
 */
import { describe, expect, test } from "bun:test"
import { writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { ROOT } from "./support/process.ts"
import { Client, tempDir, writeScript } from "./support/server.ts"
import { useServers } from "./support/servers.ts"

const start = useServers()
const everything = resolve(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js")

const CONFIG = `
import { defineConfig, tool, Schema } from "agent-tape"

const notes = new Map<string, string>()

/** A Standard Schema written by hand (what zod and valibot give): { text: string }. */
const shout = {
  "~standard": {
    version: 1,
    vendor: "hand",
    validate: (v: unknown) =>
      typeof v === "object" && v !== null && typeof (v as { text?: unknown }).text === "string"
        ? { value: v as { text: string } }
        : { issues: [{ message: "text must be a string", path: ["text"] }] }
  }
} as const

export default defineConfig({
  instructions: "You are the notes assistant. Keep answers short.",
  tools: {
    notes: tool({
      description: "Read or write a note",
      args: Schema.Struct({ mode: Schema.Literal("read", "write"), key: Schema.String, value: Schema.optional(Schema.String) }),
      policy: (args) => (args.mode === "read" ? "auto" : "ask"),
      run: async ({ mode, key, value }) => {
        if (mode === "write") notes.set(key, value ?? "")
        return { mode, key, value: notes.get(key) ?? null }
      }
    }),
    shout: tool({ description: "Shout a text", args: shout, policy: "auto", run: ({ text }) => text.toUpperCase() })
  },
  builtins: { http_get: false },
  mcpServers: { everything: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(everything)}, "stdio"], tools: ["echo", "get-sum"] } }
})
`

const SCRIPT = {
  turns: [
    { text: "Reading.", toolCalls: [{ tool: "notes", args: { mode: "read", key: "a" } }, { tool: "shout", args: { text: "hey" } }] },
    { text: "Writing.", toolCalls: [{ tool: "notes", args: { mode: "write", key: "a", value: "42" } }] },
    { text: "Echoing.", toolCalls: [{ tool: "mcp__everything__echo", args: { message: "hi there" } }] },
    { text: "Rejected.", toolCalls: [{ tool: "mcp__everything__get-sum", args: { a: 1, b: 2 } }] },
    { text: "All done." }
  ]
}

const startWithConfig = async (config: string, script: unknown) => {
  const dir = tempDir("agent-config")
  writeFileSync(join(dir, "agent-tape.config.ts"), config)
  return start({ TAPE_CONFIG: join(dir, "agent-tape.config.ts"), LLM_SCRIPT: writeScript(dir, script), TAPE_WORKSPACE: join(dir, "ws") })
}

/** Runs the server with `config` expecting it not to start; answers its exit code and what it printed. */
const refusedStart = async (file: string, config: string) => {
  const dir = tempDir("agent-bad")
  const path = join(dir, file)
  writeFileSync(path, config)
  const proc = Bun.spawn([process.execPath, join(ROOT, "src/main.ts")], {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", TAPE_STORE: "memory", TAPE_CONFIG: path },
    stdout: "pipe",
    stderr: "pipe"
  })
  const code = await proc.exited
  return { code, stderr: await new Response(proc.stderr).text(), path }
}

describe("your own agent: a config file with your tools and an MCP server", () => {
  test("policy functions pick auto or ask; user, Standard Schema and MCP tools run after approval; /api/tools lists them", async () => {
    const server = await startWithConfig(CONFIG, SCRIPT)
    const tools = (await (await fetch(`http://127.0.0.1:${server.port}/api/tools`)).json()) as {
      tools: Array<{ name: string; source: string; policy: string; offered: boolean }>
      servers: Array<{ name: string; state: string; tools: number }>
    }
    const byName = new Map(tools.tools.map((t) => [t.name, t]))
    expect(byName.get("notes")).toMatchObject({ source: "config", policy: "depends", offered: true })
    expect(byName.get("shout")).toMatchObject({ source: "config", policy: "auto" })
    expect(byName.get("mcp__everything__echo")).toMatchObject({ source: "mcp:everything", policy: "ask" })
    // The allow-list keeps only the tools asked for; http_get is turned off by the config.
    expect([...byName.keys()].filter((n) => n.startsWith("mcp__")).sort()).toEqual(["mcp__everything__echo", "mcp__everything__get-sum"])
    expect(byName.has("http_get")).toBe(false)
    expect(tools.servers).toEqual([expect.objectContaining({ name: "everything", state: "ready", tools: 2 })])

    const c = await Client.connect(server.port)
    await c.hello(null)
    await c.command({ type: "send_message", text: "go" })
    // The read is approved by its policy, the write waits for a user.
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "notes" && e.args["mode"] === "write"), "the write call")
    const approvals = c.events.filter((e) => e.type === "ToolCallApproved")
    const read = c.events.find((e) => e.type === "ToolCallRequested" && e.args["mode"] === "read")
    if (read?.type !== "ToolCallRequested") throw new Error("no read call")
    expect(approvals.map((e) => (e.type === "ToolCallApproved" ? `${e.callId} ${e.by}` : ""))).toContain(`${read.callId} policy:auto`)
    const shouted = c.events.find((e) => e.type === "ToolExecutionSucceeded" && e.output === "HEY")
    expect(shouted).toBeDefined()
    const write = c.events.find((e) => e.type === "ToolCallRequested" && e.args["mode"] === "write")
    if (write?.type !== "ToolCallRequested") throw new Error("no write call")
    await c.until(() => c.has((e) => e.type === "TurnCompleted" && e.turnId === write.turnId), "the write turn to end")
    expect(c.has((e) => e.type === "ToolCallApproved" && e.callId === write.callId)).toBe(false)
    expect((await c.command({ type: "approve", callId: write.callId })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === write.callId), "the write to run")
    expect(c.events.find((e) => e.type === "ToolExecutionSucceeded" && e.callId === write.callId)).toMatchObject({ output: '{"mode":"write","key":"a","value":"42"}' })
    // The MCP echo: asked, approved, run on the server, its text on the tape.
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "mcp__everything__echo"), "the echo call")
    const echo = c.events.find((e) => e.type === "ToolCallRequested" && e.tool === "mcp__everything__echo")
    if (echo?.type !== "ToolCallRequested") throw new Error("no echo call")
    await c.until(() => c.has((e) => e.type === "TurnCompleted" && e.turnId === echo.turnId), "the echo turn to end")
    expect((await c.command({ type: "approve", callId: echo.callId })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === echo.callId), "the echo result")
    expect(c.events.find((e) => e.type === "ToolExecutionSucceeded" && e.callId === echo.callId)).toMatchObject({ output: expect.stringContaining("hi there") })
    // A rejection reaches the model; the MCP call never runs.
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "mcp__everything__get-sum"), "the sum call")
    const sum = c.events.find((e) => e.type === "ToolCallRequested" && e.tool === "mcp__everything__get-sum")
    if (sum?.type !== "ToolCallRequested") throw new Error("no sum call")
    await c.until(() => c.has((e) => e.type === "TurnCompleted" && e.turnId === sum.turnId), "the sum turn to end")
    expect((await c.command({ type: "reject", callId: sum.callId, reason: "not now" })).type).toBe("ack")
    await c.until(() => c.events.filter((e) => e.type === "TurnCompleted").length === 5, "the last answer")
    expect(c.has((e) => e.type === "ToolExecutionStarted" && e.callId === sum.callId)).toBe(false)
    c.close()
  }, 90_000)

  test("bad configs stop start-up with one line naming the file, the key and what is wrong", async () => {
    const unknownKey = await refusedStart("agent-tape.config.ts", `export default { instructions: "x", tols: {} }`)
    expect(unknownKey.code).toBe(1)
    expect(unknownKey.stderr).toContain(`Agent Tape could not start: ${unknownKey.path}: tols: is not a known key`)
    const noRun = await refusedStart("agent-tape.config.ts", `import { tool, Schema } from "agent-tape"\nexport default { tools: { t: tool({ description: "d", args: Schema.Struct({}) } as never) } }`)
    expect(noRun.stderr).toContain(`${noRun.path}: tools.t.run: is missing`)
    const badJson = await refusedStart("agent.json", `{ "builtins": { "eval": { "policy": "sometimes" } } }`)
    expect(badJson.stderr).toContain(`${badJson.path}: builtins.eval`)
    const deadMcp = await refusedStart("agent.json", JSON.stringify({ mcpServers: { ghost: { command: "/nonexistent/mcp-server" } } }))
    expect(deadMcp.code).toBe(1)
    expect(deadMcp.stderr).toContain('MCP server "ghost" did not start')
  }, 60_000)
})

describe("the example of the README (examples/mcp)", () => {
  test("starts as the README says and offers its own tool and the MCP server's", async () => {
    const server = await start({ TAPE_CONFIG: resolve(ROOT, "examples/mcp/agent-tape.config.ts") })
    const listing = (await (await fetch(`http://127.0.0.1:${server.port}/api/tools`)).json()) as {
      tools: Array<{ name: string; source: string; policy: string; offered: boolean }>
      servers: Array<{ name: string; state: string }>
    }
    expect(listing.tools.find((t) => t.name === "memory")).toMatchObject({ source: "config", policy: "depends", offered: true })
    expect(listing.tools.find((t) => t.name === "mcp__everything__echo")).toMatchObject({ source: "mcp:everything", offered: true })
    expect(listing.servers).toEqual([expect.objectContaining({ name: "everything", state: "ready" })])
  })
})

describe("embedding: createServer", () => {
  test("starts the server inside a program with a config object, serves a session, and stops", async () => {
    const { createServer, defineConfig, tool, Schema } = await import("../src/index.ts")
    const server = await createServer({
      env: { PORT: "0", TAPE_STORE: "memory", LLM_SCRIPT: writeScript(tempDir("embed"), { turns: [{ text: "hi", toolCalls: [{ tool: "greet", args: { name: "Ada" } }] }, { text: "done" }] }) },
      config: defineConfig({ tools: { greet: tool({ description: "Greet someone", args: Schema.Struct({ name: Schema.String }), policy: "auto", run: ({ name }) => `hello ${name}` }) } })
    })
    try {
      const c = await Client.connect(server.port)
      await c.hello(null)
      await c.command({ type: "send_message", text: "greet Ada" })
      await c.until(() => c.events.filter((e) => e.type === "TurnCompleted").length === 2, "the answer after the tool")
      expect(c.events.find((e) => e.type === "ToolExecutionSucceeded")).toMatchObject({ output: "hello Ada" })
      c.close()
    } finally {
      await server.stop()
    }
    // A bad config is refused with the message start-up would give.
    const refused = await createServer({ env: { PORT: "0", TAPE_STORE: "memory" }, config: { nope: 1 } as never }).then(() => "started", (e: Error) => e.message)
    expect(refused).toContain("createServer config: nope: is not a known key")
  })
})
