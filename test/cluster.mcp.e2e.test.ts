/**
 * MCP tools with the PostgreSQL tool workers (issue 12 item 2): a server that runs no tools and one worker, both with
 * the same config file naming a stdio MCP server. An approved MCP call runs on the worker — in the MCP server the
 * worker started, never the one the server started — once; an interrupt during a call cancels it on the worker.
 * Skipped, saying why, when DATABASE_URL is not set.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { serverScript } from "./support/mcpServer.ts"
import { databaseUrl, freshSchema, pgSuite, type TestSchema } from "./support/pg.ts"
import { ROOT, type Spawned, spawnUntil } from "./support/process.ts"
import { Client, type ServerProcess, startServer, tempDir, writeScript } from "./support/server.ts"

pgSuite("MCP tools on the PostgreSQL tool workers", () => {
  let schema: TestSchema
  let server: ServerProcess
  let worker: Spawned

  beforeAll(async () => {
    schema = await freshSchema(databaseUrl!)
    const dir = tempDir("cluster-mcp")
    const config = join(dir, "agent.json")
    writeFileSync(config, JSON.stringify({ mcpServers: { t: { command: process.execPath, args: [serverScript], policy: "ask" } } }))
    const script = writeScript(dir, {
      turns: [
        { text: "Asking.", toolCalls: [{ tool: "mcp__t__stats", args: {} }] },
        { text: "Ran it." },
        { text: "Sleeping.", toolCalls: [{ tool: "mcp__t__sleep", args: { ms: 60_000 } }] },
        { text: "Fine." }
      ]
    })
    const env = { TAPE_STORE: "postgres", DATABASE_URL: schema.url, TAPE_TOOL_WORKERS: "external", TAPE_CONFIG: config, LLM_SCRIPT: script }
    server = await startServer(env)
    worker = await spawnUntil([process.execPath, join(ROOT, "src/worker.ts")], { ...process.env, BAML_LOG: "warn", ...env }, /worker ready/)
  }, 60_000)

  afterAll(async () => {
    for (const p of [server?.proc, worker?.proc]) if (p !== undefined && p.exitCode === null) p.kill("SIGKILL")
    await schema?.drop()
  })

  test("an approved MCP call runs once, on the worker's MCP server; the worker's loop answers; an interrupt cancels a call there", async () => {
    const c = await Client.connect(server.port)
    await c.hello(null)
    expect((await c.command({ type: "send_message", text: "who runs you?" })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "mcp__t__stats"), "the stats call")
    const stats = c.events.find((e) => e.type === "ToolCallRequested" && e.tool === "mcp__t__stats")
    if (stats?.type !== "ToolCallRequested") throw new Error("no call")
    expect((await c.command({ type: "approve", callId: stats.callId })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === stats.callId), "the stats result")
    const out = c.events.find((e) => e.type === "ToolExecutionSucceeded" && e.callId === stats.callId)
    if (out?.type !== "ToolExecutionSucceeded") throw new Error("no result")
    expect(JSON.parse(out.output.slice(out.output.indexOf("{")))).toMatchObject({ started: 0, parent: worker.proc.pid })
    await c.until(() => c.events.filter((e) => e.type === "TurnCompleted").length === 2, "the answer after the result")
    expect(c.events.filter((e) => e.type === "ToolExecutionStarted" && e.callId === stats.callId)).toHaveLength(1)

    expect((await c.command({ type: "send_message", text: "now sleep" })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "mcp__t__sleep"), "the sleep call")
    const sleep = c.events.find((e) => e.type === "ToolCallRequested" && e.tool === "mcp__t__sleep")
    if (sleep?.type !== "ToolCallRequested") throw new Error("no call")
    await c.until(() => c.has((e) => e.type === "TurnCompleted" && e.turnId === sleep.turnId), "the turn that asked")
    expect((await c.command({ type: "approve", callId: sleep.callId })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionStarted" && e.callId === sleep.callId), "the sleep to start on the worker")
    expect((await c.command({ type: "interrupt", reason: "enough" })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionCancelled" && e.callId === sleep.callId), "the cancellation")
    expect(c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === sleep.callId)).toBe(false)
    c.close()
  }, 90_000)
})
