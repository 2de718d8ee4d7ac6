// McpClients over Streamable HTTP against a server started here with the SDK's own server transport
// (WebStandardStreamableHTTPServerTransport inside Bun.serve): results, isError, cancellation, list_changed over the
// GET stream, a server that dies mid-call and comes back, and oversized answers.
import { describe, expect, test } from "bun:test"
import { Effect, Fiber } from "effect"
import type { McpHttpServer } from "../src/mcp/config.ts"
import { makeState, serveHttp, type TestServerOptions } from "./support/mcpServer.ts"
import { fastLimits, serverSawCancel, statusOf, waitFor, waitState, withClients } from "./support/mcpClients.ts"

const entry = (url: string, extra: Partial<Pick<McpHttpServer, "timeoutMs" | "headers">> = {}): McpHttpServer => ({
  transport: "http",
  name: "web",
  url,
  policy: "ask",
  ...extra
})

/** Runs `body` with a fresh HTTP test server; stops it afterwards. */
const withServer = async <A>(options: TestServerOptions, body: (server: ReturnType<typeof serveHttp>) => Promise<A>) => {
  const server = serveHttp(makeState(), options)
  try {
    return await body(server)
  } finally {
    await server.stop()
  }
}

describe("a Streamable HTTP MCP server", () => {
  test("lists its tools; results keep text and structured content; isError is a result, not a failure", async () => {
    const result = await withServer({}, (server) =>
      withClients([entry(server.url)], fastLimits(), (mcp) =>
        Effect.gen(function* () {
          const catalogue = yield* waitState(mcp, "web", "ready")
          return {
            catalogue,
            weather: yield* mcp.call("mcp__web__weather", { city: "Oslo" }),
            failed: yield* mcp.call("mcp__web__fail", {})
          }
        })
      )
    )
    expect(result.catalogue.tools.map((tool) => tool.name)).toContain("mcp__web__echo")
    expect(statusOf(result.catalogue, "web").transport).toBe("http")
    expect(result.weather).toEqual({ text: "Oslo: 21 °C", structured: { city: "Oslo", celsius: 21 }, isError: false, truncated: false })
    expect(result.failed).toEqual({ text: "it broke", isError: true, truncated: false })
  })

  test("interrupting a call sends MCP's cancellation, and the server's handler is aborted", async () => {
    const cancelled = await withServer({}, (server) =>
      withClients([entry(server.url)], fastLimits(), (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "web", "ready")
          const sleeping = yield* Effect.fork(mcp.call("mcp__web__sleep", { ms: 600_000 }))
          yield* mcp.call("mcp__web__await_started", {})
          yield* Fiber.interrupt(sleeping)
          yield* serverSawCancel(mcp, "web")
          return server.state.cancelled
        })
      )
    )
    expect(cancelled).toBe(1)
  })

  test("tools/list_changed (over the GET stream) refreshes the catalogue", async () => {
    const catalogue = await withServer({}, (server) =>
      withClients([entry(server.url)], fastLimits(), (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "web", "ready")
          yield* mcp.call("mcp__web__flood", { count: 0 })
          return yield* waitFor(mcp, "the late tool", (c) => c.tools.some((tool) => tool.name === "mcp__web__late"))
        })
      )
    )
    expect(catalogue.tools.find((tool) => tool.name === "mcp__web__late")?.description).toBe("Added by flood")
  })

  test("a server that dies mid-call ends the call as disconnected (may have run); once it is back, so are its tools", async () => {
    const state = makeState()
    let server = serveHttp(state)
    const port = server.port
    try {
      const result = await withClients([entry(server.url)], fastLimits(), (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "web", "ready")
          const hanging = yield* Effect.fork(mcp.call("mcp__web__hang", {}))
          yield* mcp.call("mcp__web__echo", { message: "the hang was sent before this" })
          yield* Effect.promise(() => server.stop())
          const error = yield* Effect.flip(Fiber.join(hanging))
          const restarting = statusOf(yield* waitState(mcp, "web", "restarting"), "web")
          server = serveHttp(state, { port })
          yield* waitFor(mcp, "web ready again", (c) => statusOf(c, "web").state === "ready" && statusOf(c, "web").restarts >= 1)
          return { error, restarting, echo: yield* mcp.call("mcp__web__echo", { message: "back" }) }
        })
      )
      expect(result.error).toMatchObject({ reason: "disconnected", mayHaveRun: true, server: "web" })
      expect(result.restarting.tools).toBeGreaterThan(0)
      expect(result.echo.text).toBe("echo: back")
    } finally {
      await server.stop()
    }
  })

  test("a server that forgot our session answers 404: the call did not run, and a new session is made", async () => {
    const result = await withServer({}, (server) =>
      withClients([entry(server.url)], fastLimits(), (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "web", "ready")
          server.forget()
          const error = yield* Effect.flip(mcp.call("mcp__web__echo", { message: "lost" }))
          yield* waitFor(mcp, "web ready again", (c) => statusOf(c, "web").state === "ready" && statusOf(c, "web").restarts >= 1)
          return { error, echo: yield* mcp.call("mcp__web__echo", { message: "new session" }) }
        })
      )
    )
    expect(result.error).toMatchObject({ reason: "server_error", mayHaveRun: false })
    expect(result.error.message).toContain("HTTP 404")
    expect(result.echo.text).toBe("echo: new session")
  })

  test("an answer over the message limit ends the connection, and the server is reconnected", async () => {
    const result = await withServer({}, (server) =>
      withClients([entry(server.url)], fastLimits({ maxMessageBytes: 64 * 1024 }), (mcp) =>
        Effect.gen(function* () {
          yield* waitState(mcp, "web", "ready")
          const error = yield* Effect.flip(mcp.call("mcp__web__big", { chars: 1_000_000 }))
          yield* waitFor(mcp, "web ready again", (c) => statusOf(c, "web").state === "ready" && statusOf(c, "web").restarts >= 1)
          return { error, echo: yield* mcp.call("mcp__web__echo", { message: "ok" }) }
        })
      )
    )
    expect(result.error).toMatchObject({ reason: "disconnected", mayHaveRun: true })
    expect(result.error.message).toContain("the server sent a message over 65536 bytes")
    expect(result.echo.text).toBe("echo: ok")
  })

  test("a server that is not there does not start, with an error naming it", async () => {
    const startup = await withServer({}, async (server) => {
      await server.stop()
      return withClients([entry(server.url)], fastLimits(), (mcp) => Effect.flip(mcp.awaitStartup))
    })
    expect(startup.message).toContain('MCP server "web" did not start')
  })
})
