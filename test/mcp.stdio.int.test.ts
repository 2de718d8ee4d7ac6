// McpClients against real stdio MCP server processes (test/support/mcpServer.ts, built on the SDK's own Server):
// cancellation reaching the server, time limits, a crash mid-call and the restart, list_changed, hostile servers.
import { describe, expect, test } from "bun:test"
import { Effect, Either, Fiber, TestClock } from "effect"
import type { McpCallError } from "../src/mcp/errors.ts"
import { mcpToolName } from "../src/mcp/tools.ts"
import { fastLimits, serverSawCancel, statusOf, testServer, waitFor, waitState, withClients } from "./support/mcpClients.ts"

const failure = <A>(either: Either.Either<A, McpCallError>): McpCallError => {
  if (Either.isRight(either)) throw new Error(`expected a failure, got ${JSON.stringify(either.right)}`)
  return either.left
}

describe("a stdio MCP server", () => {
  test("interrupting a call sends MCP's cancellation, and the server sees it", async () => {
    const text = await withClients([testServer("s")], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        const sleeping = yield* Effect.fork(mcp.call("mcp__s__sleep", { ms: 600_000 }))
        // The server has the request once a sleep has started; only then is there something to cancel.
        yield* mcp.call("mcp__s__await_started", {})
        yield* Fiber.interrupt(sleeping)
        const seen = yield* serverSawCancel(mcp, "s")
        const status = statusOf(yield* mcp.catalogue, "s")
        expect(status.state).toBe("ready")
        expect(status.restarts).toBe(0)
        return seen.text
      })
    )
    expect(text).toBe("cancelled: 1")
  })

  test("a call over its time limit fails as a timeout that may have run, and the server is told to stop", async () => {
    const [error, seen] = await withClients([testServer("s", [], { timeoutMs: 300 })], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        const error = failure(yield* Effect.either(mcp.call("mcp__s__sleep", { ms: 600_000 })))
        const seen = yield* serverSawCancel(mcp, "s")
        return [error, seen] as const
      })
    )
    expect(error.reason).toBe("timeout")
    expect(error.mayHaveRun).toBe(true)
    expect(error.message).toContain('MCP server "s" did not answer mcp__s__sleep')
    expect(seen.text).toBe("cancelled: 1")
  })

  test("a server that dies mid-call ends the call as disconnected (may have run), restarts, and its tools come back", async () => {
    const result = await withClients([testServer("s")], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        const error = failure(yield* Effect.either(mcp.call("mcp__s__crash", {})))
        const restarting = yield* waitState(mcp, "s", "restarting")
        const ready = yield* waitFor(mcp, "s ready again", (c) => statusOf(c, "s").state === "ready" && statusOf(c, "s").restarts >= 1)
        const echo = yield* mcp.call("mcp__s__echo", { message: "back" })
        return { error, restarting: statusOf(restarting, "s"), ready, echo }
      })
    )
    expect(result.error.reason).toBe("disconnected")
    expect(result.error.mayHaveRun).toBe(true)
    expect(result.error.message).toContain("the server went away during the call")
    expect(result.restarting.error).toContain("the server process exited")
    // Its tools stayed listed while it restarted, and are there after.
    expect(result.ready.tools.map((tool) => tool.name)).toContain("mcp__s__echo")
    expect(result.echo.text).toBe("echo: back")
  })

  test("a server in a crash loop is restarted with growing, capped back-off, then given up", async () => {
    const limits = fastLimits({ restart: { base: "20 millis", max: "100 millis", attempts: 4, stableAfter: "1 minute" } })
    const delays: Array<number> = []
    const failed = await withClients([testServer("loop", ["--exit-after-list"])], limits, (mcp) =>
      waitFor(mcp, "loop given up", (catalogue) => {
        const status = statusOf(catalogue, "loop")
        if (status.nextAttemptMs !== undefined && delays.at(-1) !== status.nextAttemptMs) delays.push(status.nextAttemptMs)
        return status.state === "failed"
      })
    )
    const status = statusOf(failed, "loop")
    expect(status.error).toContain("given up after 4 restarts")
    expect(status.restarts).toBe(4)
    expect(failed.tools).toEqual([])
    expect(delays.length).toBe(4)
    // Exponential with jitter (0.8–1.2 × 20, 40, 80 ms …), never past the cap.
    expect(delays[0]!).toBeGreaterThan(0)
    expect(delays.at(-1)!).toBeGreaterThan(delays[0]!)
    for (const delay of delays) expect(delay).toBeLessThanOrEqual(100)
  })

  test("after a burst of tools/list_changed, the last change is always listed", async () => {
    const stats = await withClients([testServer("s")], fastLimits({ refreshInterval: "1 millis" }), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        yield* mcp.call("mcp__s__flood", { count: 5000 })
        yield* waitFor(mcp, "the late tool", (c) => c.tools.some((tool) => tool.name === "mcp__s__late"))
        return JSON.parse((yield* mcp.call("mcp__s__stats", {})).text) as { listCalls: number }
      })
    )
    expect(stats.listCalls).toBeGreaterThanOrEqual(2)
  })

  test("a stream of tools/list_changed is listed at most once per refresh interval, and leaves no backlog", async () => {
    const seen = await withClients(
      [testServer("s")],
      fastLimits({ refreshInterval: "1 second" }),
      (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "s", "ready")
          // Notifications for 300 ms of real time while the test clock stands still: one listing, then the interval.
          yield* mcp.call("mcp__s__trickle", { ms: 300 })
          const during = JSON.parse((yield* mcp.call("mcp__s__stats", {})).text) as { listCalls: number }
          yield* TestClock.adjust("1 second")
          yield* waitFor(mcp, "the late tool", (c) => c.tools.some((tool) => tool.name === "mcp__s__late"))
          // Every notification was answered by that listing: another interval brings no fourth one. (A bounded wait
          // for something that must not happen: a slow machine could only make this pass, never fail.)
          yield* TestClock.adjust("1 second")
          const after = yield* mcp.call("mcp__s__await_list", { count: 4, ms: 500 })
          return { during: during.listCalls, after: after.text }
        }),
      { testClock: true }
    )
    expect(seen.during).toBeLessThanOrEqual(2)
    expect(seen.after).toBe("not listed: 3")
  })

  test("a huge answer is cut to the cap and marked truncated", async () => {
    const result = await withClients([testServer("s")], fastLimits({ maxOutputChars: 1000 }), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        return yield* mcp.call("mcp__s__big", { chars: 500_000 })
      })
    )
    expect(result.text.length).toBe(1000)
    expect(result.truncated).toBe(true)
  })

  test("an answer over the message limit ends the connection, not the process; the server comes back", async () => {
    const limits = fastLimits({ maxMessageBytes: 256 * 1024 })
    const result = await withClients([testServer("s")], limits, (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        const error = failure(yield* Effect.either(mcp.call("mcp__s__big", { chars: 1_000_000 })))
        yield* waitFor(mcp, "s ready again", (c) => statusOf(c, "s").state === "ready" && statusOf(c, "s").restarts >= 1)
        return { error, echo: yield* mcp.call("mcp__s__echo", { message: "ok" }) }
      })
    )
    expect(result.error.reason).toBe("disconnected")
    expect(result.error.message).toContain("ReadBuffer exceeded maximum size of 262144 bytes")
    expect(result.echo.text).toBe("echo: ok")
  })

  test("thousands of tools: the catalogue keeps the limit and says how many were left out", async () => {
    const catalogue = await withClients([testServer("many", ["--tools", "3000"])], fastLimits({ maxTools: 50 }), (mcp) =>
      waitState(mcp, "many", "ready")
    )
    const status = statusOf(catalogue, "many")
    expect(catalogue.tools.length).toBe(50)
    expect(status.tools).toBe(50)
    expect(status.skippedCount).toBeGreaterThan(2900)
    expect(status.skipped[0]?.reason).toBe("the server offers more than 50 tools")
  })

  test("hostile tool lists: unsafe names and bad schemas are left out, each with its reason; the rest work", async () => {
    const { catalogue, redos, slug } = await withClients([testServer("h", ["--hostile"])], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        const catalogue = yield* waitState(mcp, "h", "ready")
        const redos = yield* Effect.either(mcp.call("mcp__h__redos", { s: "b" }).pipe(Effect.mapError((e) => e.reason)))
        const slug = yield* Effect.either(mcp.call("mcp__h__slug", { s: "Not A Slug" }).pipe(Effect.mapError((e) => e.reason)))
        return { catalogue, redos, slug }
      })
    )
    const reasons = Object.fromEntries(statusOf(catalogue, "h").skipped.map((skip) => [skip.tool, skip.reason]))
    expect(reasons["bad name!"]).toContain("characters other than")
    expect(reasons["x".repeat(80)]).toContain("longer than 64")
    expect(reasons.echo).toBe("listed twice")
    expect(reasons.nonsense_type).toContain("does not compile")
    expect(reasons.deep).toContain("nested deeper than")
    expect(reasons.huge_schema).toContain("longer than")
    expect(reasons.not_object).toContain(`"type": "object"`)
    expect(reasons.async_schema).toContain("$async")
    expect(reasons.missing_ref).toContain("does not compile")
    expect(reasons["(unnamed)"]).toContain("not a tool")
    const names = catalogue.tools.map((tool) => tool.name)
    expect(names).toContain(mcpToolName("h", "redos"))
    expect(names).toContain(mcpToolName("h", "wordy"))
    const wordy = catalogue.tools.find((tool) => tool.name === "mcp__h__wordy")!
    expect(wordy.description.length).toBeLessThanOrEqual(1024)
    expect(wordy.description).not.toMatch(/[\u0000\u001b]/)
    // The risky pattern is not run here (the server checks its own args), the safe one is.
    expect(redos._tag).toBe("Right")
    expect(slug).toEqual(Either.left("invalid_args"))
  })
})

describe("a stdio MCP server that does not start", () => {
  test("a missing command is failed with an error naming the server; awaitStartup fails start-up with it", async () => {
    const nope = { transport: "stdio", name: "nope", command: "no-such-mcp-command-xyz", args: [], policy: "ask" } as const
    const { startup, catalogue } = await withClients([nope, testServer("fine")], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        const startup = yield* Effect.either(mcp.awaitStartup)
        return { startup, catalogue: yield* mcp.catalogue }
      })
    )
    expect(Either.isLeft(startup)).toBe(true)
    if (Either.isLeft(startup)) {
      expect(startup.left.message).toContain('MCP server "nope" did not start')
      expect(startup.left.message).toContain("no-such-mcp-command-xyz")
      expect(startup.left.message).not.toContain('"fine"')
    }
    expect(statusOf(catalogue, "nope").state).toBe("failed")
  })

  test("a server that exits at start is failed with its stderr; one that never answers is failed on the start time limit", async () => {
    const exits = {
      transport: "stdio",
      name: "exits",
      command: process.execPath,
      args: ["-e", "console.error('missing API_TOKEN'); process.exit(2)"],
      policy: "ask"
    } as const
    const silent = { transport: "stdio", name: "silent", command: process.execPath, args: ["-e", "process.stdin.resume()"], policy: "ask" } as const
    const startup = await withClients([exits, silent], fastLimits({ startTimeout: "500 millis" }), (mcp) => Effect.flip(mcp.awaitStartup))
    const errors = Object.fromEntries(startup.servers.map((server) => [server.name, server.error]))
    expect(errors.exits).toContain("missing API_TOKEN")
    expect(errors.silent).toContain("no answer to initialize within 500ms")
  })

  test("calls to a failed server's tools are refused without running", async () => {
    const error = await withClients([testServer("s")], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "s", "ready")
        return yield* Effect.flip(mcp.call("mcp__gone__echo", { message: "x" }))
      })
    )
    expect(error.reason).toBe("unknown_tool")
    expect(error.mayHaveRun).toBe(false)
  })
})
