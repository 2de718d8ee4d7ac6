/**
 * Test support for McpClients: runs a body against real servers in a scope of its own (closing it stops every
 * server process), and waits on the catalogue's changes instead of sleeping.
 */
import { Duration, Effect, Option, Stream, TestContext } from "effect"
import type { McpServerConfig, McpStdioServer } from "../../src/mcp/config.ts"
import { type McpLimits, mcpLimits } from "../../src/mcp/limits.ts"
import { type McpCatalogue, type McpClientsShape, type McpServerStatus, make } from "../../src/mcp/McpClients.ts"
import { serverScript } from "./mcpServer.ts"

/**
 * Runs `body` with clients of `servers`; everything is closed afterwards, whatever happened. With `testClock`, the
 * clients' time (back-off, refresh interval, time limits) is the TestClock's, moved by `TestClock.adjust` only.
 */
export const withClients = <A, E>(
  servers: ReadonlyArray<McpServerConfig>,
  limits: McpLimits,
  body: (mcp: McpClientsShape) => Effect.Effect<A, E>,
  options: { readonly testClock?: boolean } = {}
): Promise<A> => {
  const program = Effect.scoped(Effect.flatMap(make(servers, limits), body))
  return Effect.runPromise(options.testClock === true ? Effect.provide(program, TestContext.TestContext) : program)
}

/** The first catalogue for which `ok` holds; fails (does not hang) if none comes within `within`. */
export const waitFor = (mcp: McpClientsShape, what: string, ok: (catalogue: McpCatalogue) => boolean, within: Duration.DurationInput = "30 seconds") =>
  mcp.changes.pipe(
    Stream.filter(ok),
    Stream.runHead,
    Effect.flatMap(Option.match({ onNone: () => Effect.dieMessage(`the catalogue ended before: ${what}`), onSome: Effect.succeed })),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`waited too long for: ${what}`) }),
    Effect.orDie
  )

/** The status of `name`. */
export const statusOf = (catalogue: McpCatalogue, name: string): McpServerStatus => {
  const status = catalogue.servers.find((server) => server.name === name)
  if (status === undefined) throw new Error(`no server ${name}`)
  return status
}

/** Waits until `name` is in `state`. */
export const waitState = (mcp: McpClientsShape, name: string, state: McpServerStatus["state"]) =>
  waitFor(mcp, `${name} ${state}`, (catalogue) => statusOf(catalogue, name).state === state)

/** The test server as a stdio MCP server entry. */
export const testServer = (
  name: string,
  flags: ReadonlyArray<string> = [],
  extra: Partial<Pick<McpStdioServer, "policy" | "tools" | "timeoutMs">> = {}
): McpStdioServer => ({ transport: "stdio", name, command: process.execPath, args: [serverScript, ...flags], policy: "ask", ...extra })

/** Small limits so restarts and refreshes happen quickly in tests. */
export const fastLimits = (overrides: Parameters<typeof mcpLimits>[0] = {}) =>
  mcpLimits({
    startTimeout: "20 seconds",
    refreshInterval: "100 millis",
    ...overrides,
    restart: { base: "20 millis", max: "200 millis", attempts: 20, stableAfter: "1 minute", ...overrides.restart }
  })

/** Answers once the test server `server` saw a cancellation (its await_cancelled tool); fails if it never does. */
export const serverSawCancel = (mcp: McpClientsShape, server: string) =>
  mcp.call(`mcp__${server}__await_cancelled`, {}).pipe(
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`MCP server ${server} never saw a cancellation`) })
  )
