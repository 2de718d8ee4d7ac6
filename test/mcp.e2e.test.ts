/**
 * MCP tools on the real server process (issue 12): edited args, an interrupt during a call, a server that crashes
 * mid-call, and the replay of the recorded tape (no call made). Against a stdio MCP server of the tests' own
 * (test/support/mcpServer.ts: it sleeps until cancelled, or dies, on request); approval and rejection against
 * server-everything are in agent.config.e2e.
 */
import { describe, expect, test } from "bun:test"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Envelope } from "../src/domain/Event.ts"
import { serverScript } from "./support/mcpServer.ts"
import { ROOT } from "./support/process.ts"
import { Client, exportTape, tempDir, writeScript } from "./support/server.ts"
import { useServers } from "./support/servers.ts"

const start = useServers()

const withMcp = async (script: unknown) => {
  const dir = tempDir("mcp-e2e")
  const config = join(dir, "agent.json")
  writeFileSync(config, JSON.stringify({ mcpServers: { t: { command: process.execPath, args: [serverScript], policy: "ask" } } }))
  return start({ TAPE_CONFIG: config, LLM_SCRIPT: writeScript(dir, script) })
}

const callOf = (c: Client, tool: string) => {
  const e = c.events.find((x) => x.type === "ToolCallRequested" && x.tool === tool)
  if (e?.type !== "ToolCallRequested") throw new Error(`no ${tool} call`)
  return e
}

const awaitEnd = (c: Client, turnId: string) => c.until(() => c.has((e) => e.type === "TurnCompleted" && e.turnId === turnId), `turn ${turnId} to end`)

describe("MCP tools end to end", () => {
  test("edited args run as edited; an interrupt during a call cancels it on the server; the session goes on", async () => {
    const server = await withMcp({
      turns: [
        { text: "Echo.", toolCalls: [{ tool: "mcp__t__echo", args: { message: "as asked" } }] },
        { text: "Sleeping.", toolCalls: [{ tool: "mcp__t__sleep", args: { ms: 60_000 } }] },
        { text: "Fine." }
      ]
    })
    const c = await Client.connect(server.port)
    await c.hello(null)
    await c.command({ type: "send_message", text: "go" })
    await c.until(() => c.has((e) => e.type === "ToolCallRequested"), "the echo call")
    const echo = callOf(c, "mcp__t__echo")
    await awaitEnd(c, echo.turnId)
    expect((await c.command({ type: "approve", callId: echo.callId, args: { message: "as edited" } })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === echo.callId), "the echo result")
    expect(c.events.find((e) => e.type === "ToolExecutionSucceeded" && e.callId === echo.callId)).toMatchObject({ output: expect.stringContaining("as edited") })
    // An edit the server's schema refuses is refused before it is sent.
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "mcp__t__sleep"), "the sleep call")
    const sleep = callOf(c, "mcp__t__sleep")
    await awaitEnd(c, sleep.turnId)
    expect(await c.command({ type: "approve", callId: sleep.callId, args: { ms: "long" } })).toMatchObject({ type: "nack", error: { code: "invalid_args" } })
    expect((await c.command({ type: "approve", callId: sleep.callId })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionStarted" && e.callId === sleep.callId), "the sleep to start")
    expect((await c.command({ type: "interrupt", reason: "enough" })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolExecutionCancelled" && e.callId === sleep.callId), "the cancellation")
    expect(c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === sleep.callId)).toBe(false)
    // The server is still there for the next call.
    const listing = (await (await fetch(`http://127.0.0.1:${server.port}/api/tools`)).json()) as { servers: Array<{ state: string }> }
    expect(listing.servers[0]?.state).toBe("ready")
    c.close()
  }, 60_000)

  test("a server that dies mid-call: the call is cancelled with outcome unknown, never run again; the server comes back", async () => {
    const server = await withMcp({
      // A cancellation ends the loop: the next turn is the user's "again".
      turns: [{ text: "Crashing.", toolCalls: [{ tool: "mcp__t__crash", args: {} }] }, { text: "Echo.", toolCalls: [{ tool: "mcp__t__echo", args: { message: "back" } }] }, { text: "ok" }]
    })
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    await c.command({ type: "send_message", text: "crash it" })
    await c.until(() => c.has((e) => e.type === "ToolCallRequested"), "the crash call")
    const crash = callOf(c, "mcp__t__crash")
    await awaitEnd(c, crash.turnId)
    await c.command({ type: "approve", callId: crash.callId })
    await c.until(() => c.has((e) => e.type === "ToolExecutionCancelled" && e.callId === crash.callId), "the broken call to be closed", 30_000)
    expect(c.events.find((e) => e.type === "ToolExecutionCancelled" && e.callId === crash.callId)).toMatchObject({ outcome: "unknown" })
    expect(c.events.filter((e) => e.type === "ToolExecutionStarted" && e.callId === crash.callId)).toHaveLength(1)
    // The server is restarted with back-off; the next call reaches it.
    await c.command({ type: "send_message", text: "again" })
    await c.until(() => c.has((e) => e.type === "ToolCallRequested" && e.tool === "mcp__t__echo"), "the echo call")
    const echo = callOf(c, "mcp__t__echo")
    await awaitEnd(c, echo.turnId)
    await c.command({ type: "approve", callId: echo.callId })
    await c.until(() => c.has((e) => e.type === "ToolExecutionSucceeded" && e.callId === echo.callId), "the echo after the restart", 30_000)

    // Replay: the recorded tape folds to the same chat with no server and no call (the CLI reads the file only).
    const tape = await exportTape(server.port, session)
    const file = join(tempDir("mcp-replay"), "tape.jsonl")
    writeFileSync(file, tape.map((e: Envelope) => JSON.stringify(e)).join("\n"))
    const replay = Bun.spawnSync([process.execPath, join(ROOT, "src/cli/tape.ts"), "replay", file], { cwd: ROOT, env: { ...process.env, TAPE_CONFIG: "" } })
    expect(replay.exitCode).toBe(0)
    const out = replay.stdout.toString()
    expect(out).toContain("mcp__t__crash")
    expect(out).toContain("back")
    c.close()
  }, 90_000)
})
