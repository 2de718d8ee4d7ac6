// McpClients against a server that is not ours: @modelcontextprotocol/server-everything over stdio (its echo,
// get-sum, get-structured-content and trigger-long-running-operation tools).
import { describe, expect, test } from "bun:test"
import { Effect, Fiber } from "effect"
import { resolve } from "node:path"
import type { McpStdioServer } from "../src/mcp/config.ts"
import { fastLimits, statusOf, waitFor, waitState, withClients } from "./support/mcpClients.ts"

const everything = (extra: Partial<Pick<McpStdioServer, "tools" | "timeoutMs" | "policy">> = {}): McpStdioServer => ({
  transport: "stdio",
  name: "everything",
  command: process.execPath,
  args: [resolve(import.meta.dir, "../node_modules/@modelcontextprotocol/server-everything/dist/index.js"), "stdio"],
  policy: "ask",
  ...extra
})

describe("server-everything over stdio", () => {
  test("its tools are listed as mcp__everything__<tool> with their descriptions, schemas and the server's policy", async () => {
    const catalogue = await withClients([everything({ policy: "auto" })], fastLimits(), (mcp) => waitState(mcp, "everything", "ready"))
    const names = catalogue.tools.map((tool) => tool.name)
    expect(names).toContain("mcp__everything__echo")
    expect(names).toContain("mcp__everything__get-sum")
    const sum = catalogue.tools.find((tool) => tool.name === "mcp__everything__get-sum")!
    expect(sum).toMatchObject({ server: "everything", tool: "get-sum", description: "Returns the sum of two numbers", policy: "auto" })
    expect(sum.inputSchema).toMatchObject({ type: "object", required: ["a", "b"] })
    expect(statusOf(catalogue, "everything")).toMatchObject({ state: "ready", transport: "stdio", restarts: 0 })
  })

  test("the allow-list keeps only the named tools", async () => {
    const catalogue = await withClients([everything({ tools: ["echo", "get-sum"] })], fastLimits(), (mcp) =>
      waitState(mcp, "everything", "ready")
    )
    expect(catalogue.tools.map((tool) => tool.name).sort()).toEqual(["mcp__everything__echo", "mcp__everything__get-sum"])
    expect(statusOf(catalogue, "everything").skipped[0]?.reason).toBe("not in the server's tools allow-list")
  })

  test("calls: get-sum and echo answer; args that fail the schema are refused with a readable error and not sent", async () => {
    const result = await withClients([everything()], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "everything", "ready")
        const tool = (yield* mcp.catalogue).tools.find((t) => t.name === "mcp__everything__echo")!
        return {
          sum: yield* mcp.call("mcp__everything__get-sum", { a: 2, b: 40 }),
          echo: yield* mcp.call("mcp__everything__echo", { message: "hello" }),
          bad: yield* Effect.flip(mcp.call("mcp__everything__echo", { message: 5 })),
          missing: yield* Effect.flip(mcp.call("mcp__everything__get-sum", { a: 1 })),
          validated: tool.validate({ message: 5 })
        }
      })
    )
    expect(result.sum).toEqual({ text: "The sum of 2 and 40 is 42.", isError: false, truncated: false })
    expect(result.echo.text).toBe("Echo: hello")
    expect(result.bad).toMatchObject({ reason: "invalid_args", mayHaveRun: false })
    expect(result.bad.message).toBe("invalid args for mcp__everything__echo: args/message must be string")
    expect(result.missing.message).toContain("must have required property 'b'")
    expect(result.validated).toMatchObject({ _tag: "Left", left: "args/message must be string" })
  })

  test("a result with text and structured content keeps both", async () => {
    const result = await withClients([everything()], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "everything", "ready")
        return yield* mcp.call("mcp__everything__get-structured-content", { location: "Chicago" })
      })
    )
    expect(result.structured).toEqual({ temperature: 36, conditions: "Light rain / drizzle", humidity: 82 })
    expect(JSON.parse(result.text)).toEqual(result.structured!)
    expect(result.isError).toBe(false)
  })

  test("interrupting the long-running operation ends the call at once; the server stays connected", async () => {
    const result = await withClients([everything()], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "everything", "ready")
        const running = yield* Effect.fork(mcp.call("mcp__everything__trigger-long-running-operation", { duration: 600, steps: 2 }))
        yield* Fiber.interrupt(running)
        const exit = yield* Fiber.await(running)
        const echo = yield* mcp.call("mcp__everything__echo", { message: "still here" })
        return { interrupted: exit._tag === "Failure", echo, status: statusOf(yield* mcp.catalogue, "everything") }
      })
    )
    expect(result.interrupted).toBe(true)
    expect(result.echo.text).toBe("Echo: still here")
    expect(result.status.restarts).toBe(0)
  })

  test("the long-running operation over the server's time limit fails as a timeout that may have run", async () => {
    const error = await withClients([everything({ timeoutMs: 300 })], fastLimits(), (mcp) =>
      Effect.gen(function* () {
        yield* waitState(mcp, "everything", "ready")
        return yield* Effect.flip(mcp.call("mcp__everything__trigger-long-running-operation", { duration: 600, steps: 2 }))
      })
    )
    expect(error).toMatchObject({ reason: "timeout", mayHaveRun: true, server: "everything" })
  })

  test("the tool it adds once initialized is in the catalogue", async () => {
    // server-everything registers simulate-research-query once initialized and announces it with list_changed; the
    // first listing may or may not have it already (the list_changed guard's own tests are over stdio and HTTP).
    const catalogue = await withClients([everything()], fastLimits(), (mcp) =>
      waitFor(mcp, "the tool added after initialization", (c) => c.tools.some((tool) => tool.name === "mcp__everything__simulate-research-query"))
    )
    expect(statusOf(catalogue, "everything").state).toBe("ready")
  })
})

describe("server-everything's environment", () => {
  test("a stdio server gets its configured env on a minimal inherited one, not our secrets", async () => {
    process.env.TAPE_TEST_SECRET = "do-not-pass-on"
    try {
      const server = { ...everything(), env: { GREETING: "hi" } }
      const result = await withClients([server], fastLimits(), (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "everything", "ready")
          return yield* mcp.call("mcp__everything__get-env", {})
        })
      )
      const env = JSON.parse(result.text) as Record<string, string>
      expect(env.GREETING).toBe("hi")
      expect(env.TAPE_TEST_SECRET).toBeUndefined()
      expect(env.PATH).toBeDefined()
    } finally {
      delete process.env.TAPE_TEST_SECRET
    }
  })
})
