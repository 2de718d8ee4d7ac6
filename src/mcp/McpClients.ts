/**
 * McpClients: one supervised connection per configured MCP server — its state, its tools as catalogue entries
 * (`mcp__<server>__<tool>`, refreshed on `tools/list_changed`) and `call`. A server that exits or disconnects is
 * restarted with back-off; every server is untrusted, so everything it sends is bounded and nothing it does is fatal.
 */
import {
  Clock,
  Context,
  Duration,
  Effect,
  Either,
  FiberMap,
  Layer,
  Option,
  Queue,
  Schedule,
  type Scope,
  Stream,
  SubscriptionRef
} from "effect"
import type { McpPolicy, McpServerConfig } from "./config.ts"
import { type Connection, openConnection } from "./connection.ts"
import { McpCallError, McpStartupError } from "./errors.ts"
import { defaultMcpLimits, type McpLimits } from "./limits.ts"
import { callResultOf, type McpCallResult, type McpTool, type SkippedTool, toolsFromListing, type ToolListing } from "./tools.ts"

/**
 * `connecting`: the first attempt is under way; `ready`: connected, tools listed; `restarting`: it was ready, then
 * exited or disconnected, and is being restarted (its last tools stay listed, calls wait for it); `failed`: it did not
 * start (attempts go on with back-off) or was given up after too many restarts (its tools are gone).
 */
export type McpServerState = "connecting" | "ready" | "failed" | "restarting"

/** One server as `GET /api/tools` shows it. Never holds its env, headers or command line. */
export interface McpServerStatus {
  readonly name: string
  readonly transport: "stdio" | "http"
  readonly policy: McpPolicy
  readonly state: McpServerState
  /** Why it is `failed` or `restarting` (names what happened; a stdio server's last stderr). */
  readonly error?: string
  /** Tools in the catalogue. */
  readonly tools: number
  /** The first few tools left out, and why (unsafe name, bad schema, allow-list, over the limit). */
  readonly skipped: ReadonlyArray<SkippedTool>
  /** How many tools were left out in all. */
  readonly skippedCount: number
  /** Restart attempts since start. */
  readonly restarts: number
  /** While waiting to try again: the back-off delay, in ms. */
  readonly nextAttemptMs?: number
}

/** The MCP part of the tool catalogue at one moment. */
export interface McpCatalogue {
  /** Every tool of every server, in config order. */
  readonly tools: ReadonlyArray<McpTool>
  /** Every configured server, in config order. */
  readonly servers: ReadonlyArray<McpServerStatus>
}

/** The MCP clients. */
export interface McpClientsShape {
  /** The latest catalogue, read synchronously (for the session writer's pure check). */
  readonly current: () => McpCatalogue
  /** The latest catalogue. */
  readonly catalogue: Effect.Effect<McpCatalogue>
  /** The catalogue now, then after every change (tools listed or refreshed, a server's state). */
  readonly changes: Stream.Stream<McpCatalogue>
  /**
   * Calls a catalogue tool (`mcp__<server>__<tool>`): checks the args against its schema, waits for its server to be
   * connected, sends the call and bounds the answer. `isError` answers are results. The time limit (the server's
   * `timeoutMs`, else McpLimits.callTimeout) covers waiting and the call. Interrupting the effect sends MCP's
   * cancellation for the request in flight.
   */
  readonly call: (name: string, args: unknown) => Effect.Effect<McpCallResult, McpCallError>
  /**
   * Waits until no server is `connecting`; fails naming every server that did not start. For a start-up that must
   * not go on without its servers; otherwise they simply stay `failed` (and are tried again with back-off).
   */
  readonly awaitStartup: Effect.Effect<void, McpStartupError>
}

/** Whether calls can go to a server now. */
type Live =
  | { readonly _tag: "up"; readonly connection: Connection }
  | { readonly _tag: "down" }
  | { readonly _tag: "gone"; readonly error: string }

const down: Live = { _tag: "down" }

/** Fields of a status to replace; `undefined` removes a field. */
type StatusPatch = { readonly [K in keyof McpServerStatus]?: McpServerStatus[K] | undefined }

/** `entry` with `patch` applied; a field patched to undefined is removed, so a status stays plain JSON. */
const patched = (entry: McpServerStatus, patch: StatusPatch): McpServerStatus => {
  const error = "error" in patch ? patch.error : entry.error
  const nextAttemptMs = "nextAttemptMs" in patch ? patch.nextAttemptMs : entry.nextAttemptMs
  return {
    name: entry.name,
    transport: entry.transport,
    policy: entry.policy,
    state: patch.state ?? entry.state,
    tools: patch.tools ?? entry.tools,
    skipped: patch.skipped ?? entry.skipped,
    skippedCount: patch.skippedCount ?? entry.skippedCount,
    restarts: patch.restarts ?? entry.restarts,
    ...(error === undefined ? {} : { error }),
    ...(nextAttemptMs === undefined ? {} : { nextAttemptMs })
  }
}

/** Builds the clients in the current scope; closing it closes every connection (and stops every child process). */
export const make = (
  servers: ReadonlyArray<McpServerConfig>,
  limits: McpLimits = defaultMcpLimits
): Effect.Effect<McpClientsShape, never, Scope.Scope> =>
  Effect.gen(function* () {
    const order = servers.map((server) => server.name)
    const initial: McpCatalogue = {
      tools: [],
      servers: servers.map((server) => ({
        name: server.name,
        transport: server.transport,
        policy: server.policy,
        state: "connecting",
        tools: 0,
        skipped: [],
        skippedCount: 0,
        restarts: 0
      }))
    }
    const catalogue = yield* SubscriptionRef.make(initial)
    let latest = initial
    let byName = new Map<string, McpTool>()
    /** Each server's config with whether calls can go to it now. */
    interface Runtime {
      readonly config: McpServerConfig
      readonly live: SubscriptionRef.SubscriptionRef<Live>
    }
    const runtimes = new Map<string, Runtime>()
    for (const config of servers) runtimes.set(config.name, { config, live: yield* SubscriptionRef.make<Live>(down) })

    /** Replaces one server's status fields and, when given, its tools. */
    const publish = (server: string, status: StatusPatch, tools?: ReadonlyArray<McpTool>) =>
      SubscriptionRef.update(catalogue, (current) => {
        const next: McpCatalogue = {
          tools:
            tools === undefined
              ? current.tools
              : order.flatMap((name) => (name === server ? tools : current.tools.filter((tool) => tool.server === name))),
          servers: current.servers.map((entry) => {
            if (entry.name !== server) return entry
            return patched(entry, tools === undefined ? status : { ...status, tools: tools.length })
          })
        }
        latest = next
        if (tools !== undefined) byName = new Map(next.tools.map((tool) => [tool.name, tool]))
        return next
      })

    const publishListing = (config: McpServerConfig, listing: ToolListing, status: StatusPatch) =>
      Effect.gen(function* () {
        const hostile = listing.skipped.filter((skip) => !skip.reason.includes("allow-list"))
        if (hostile.length > 0)
          yield* Effect.logWarning(
            `MCP server "${config.name}": left out ${listing.skippedCount} tool(s): ` +
              hostile.map((skip) => `${skip.tool} (${skip.reason})`).join(", ")
          )
        yield* publish(config.name, { ...status, skipped: listing.skipped, skippedCount: listing.skippedCount }, listing.tools)
      })

    // Refreshes on tools/list_changed: the signal queue holds at most one, so a flood of notifications costs one
    // listing per refreshInterval, and the last notification is always followed by a listing.
    const refresher = (config: McpServerConfig, connection: Connection, signal: Queue.Queue<void>) =>
      Effect.forever(
        Effect.gen(function* () {
          yield* Queue.take(signal)
          const listed = yield* Effect.either(connection.listTools)
          if (Either.isLeft(listed)) yield* Effect.logWarning(`MCP server "${config.name}": refreshing its tools failed: ${listed.left}`)
          else yield* publishListing(config, toolsFromListing(config, listed.right, limits), {})
          yield* Effect.sleep(limits.refreshInterval)
        })
      )

    /** One connection's life: connect, list, ready until it closes; the reason it closed and how long it was up. */
    const runConnection = (config: McpServerConfig, live: SubscriptionRef.SubscriptionRef<Live>) =>
      Effect.scoped(
        Effect.gen(function* () {
          const signal = yield* Queue.sliding<void>(1)
          // Called by the SDK outside any fiber: a synchronous offer to a sliding queue cannot block or fail.
          const connection = yield* openConnection(config, limits, () => void Queue.unsafeOffer(signal, undefined))
          const listed = yield* connection.listTools
          yield* publishListing(config, toolsFromListing(config, listed, limits), {
            state: "ready",
            error: undefined,
            nextAttemptMs: undefined
          })
          yield* SubscriptionRef.set(live, { _tag: "up", connection })
          const since = yield* Clock.currentTimeMillis
          yield* Effect.forkScoped(refresher(config, connection, signal))
          const reason = yield* connection.closed
          yield* SubscriptionRef.set(live, down)
          const upForMs = (yield* Clock.currentTimeMillis) - since
          return { reason, upForMs }
        })
      )

    /** Keeps one server connected: restarts with exponential back-off and jitter, capped, until given up. */
    const supervise = ({ config, live }: Runtime) =>
      Effect.gen(function* () {
        let everReady = false
        const schedule = Schedule.exponential(limits.restart.base, 2).pipe(
          Schedule.jittered,
          Schedule.either(Schedule.spaced(limits.restart.max)),
          Schedule.intersect(Schedule.recurs(limits.restart.attempts)),
          Schedule.delays,
          // Published before the wait; the step that ends the schedule has no delay and is not shown.
          Schedule.tapOutput((delay) =>
            Duration.toMillis(delay) > 0 ? publish(config.name, { nextAttemptMs: Math.round(Duration.toMillis(delay)) }) : Effect.void
          )
        )
        const driver = yield* Schedule.driver(schedule)
        const stableMs = Duration.toMillis(limits.restart.stableAfter)
        for (let restarts = 1; ; restarts++) {
          const attempt = yield* Effect.either(runConnection(config, live))
          const reason = Either.isRight(attempt) ? attempt.right.reason : attempt.left
          if (Either.isRight(attempt)) {
            everReady = true
            if (attempt.right.upForMs >= stableMs) yield* driver.reset
          }
          yield* SubscriptionRef.set(live, down)
          yield* publish(config.name, { state: everReady ? "restarting" : "failed", error: reason })
          yield* Effect.logWarning(`MCP server "${config.name}" ${everReady ? "stopped" : "did not start"}: ${reason}`)
          const next = yield* Effect.either(driver.next(reason))
          if (Either.isLeft(next)) {
            const error = `given up after ${limits.restart.attempts} restarts; last error: ${reason}`
            yield* SubscriptionRef.set(live, { _tag: "gone", error })
            yield* publish(config.name, { state: "failed", error, nextAttemptMs: undefined }, [])
            return yield* Effect.logError(`MCP server "${config.name}" ${error}`)
          }
          yield* publish(config.name, { restarts, nextAttemptMs: undefined })
        }
      }).pipe(
        // A bug here must not end the server silently: it shows as failed.
        Effect.catchAllCause((cause) =>
          Effect.zipRight(
            Effect.logError(`MCP server "${config.name}": its supervisor stopped`, cause),
            Effect.zipRight(
              SubscriptionRef.set(live, { _tag: "gone", error: "internal error" }),
              publish(config.name, { state: "failed", error: "internal error (see the log)" }, [])
            )
          )
        ),
        Effect.annotateLogs("mcpServer", config.name)
      )

    const supervisors = yield* FiberMap.make<string>()
    for (const runtime of runtimes.values()) yield* FiberMap.run(supervisors, runtime.config.name, supervise(runtime))

    const awaitConnection = ({ config: server, live }: Runtime, tool: string) =>
      live.changes.pipe(
        Stream.filter((live) => live._tag !== "down"),
        Stream.runHead,
        Effect.flatMap((live) =>
          Option.isSome(live) && live.value._tag === "up"
            ? Effect.succeed(live.value.connection)
            : new McpCallError({
                server: server.name,
                tool,
                reason: "unavailable",
                mayHaveRun: false,
                message: `MCP server "${server.name}" is not available (${Option.isSome(live) && live.value._tag === "gone" ? live.value.error : "stopped"}); the call was not sent`
              })
        )
      )

    const call = Effect.fn("McpClients.call")(function* (name: string, args: unknown) {
      const tool = byName.get(name)
      const runtime = tool === undefined ? undefined : runtimes.get(tool.server)
      const fail = (server: string, reason: "unknown_tool" | "invalid_args", message: string) =>
        new McpCallError({ server, tool: name, reason, mayHaveRun: false, message })
      if (tool === undefined || runtime === undefined) return yield* fail("", "unknown_tool", `unknown MCP tool ${JSON.stringify(name)}`)
      const server = runtime.config
      const checked = tool.validate(args)
      if (Either.isLeft(checked)) return yield* fail(server.name, "invalid_args", `invalid args for ${name}: ${checked.left}`)
      const timeout = Duration.millis(server.timeoutMs ?? Duration.toMillis(limits.callTimeout))
      let sent = false
      return yield* Effect.gen(function* () {
        const connection = yield* awaitConnection(runtime, name)
        const answer = yield* connection
          .callTool(tool.tool, checked.right, { backstopMs: Duration.toMillis(timeout) + 1000, onSent: () => (sent = true) })
          .pipe(
            Effect.mapError(
              (failure) => new McpCallError({ ...failure, server: server.name, tool: name, message: `MCP server "${server.name}": ${failure.message}` })
            )
          )
        return callResultOf(answer, limits)
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new McpCallError({
              server: server.name,
              tool: name,
              reason: sent ? "timeout" : "unavailable",
              mayHaveRun: sent,
              message: sent
                ? `MCP server "${server.name}" did not answer ${name} within ${Duration.format(timeout)}; the call was cancelled and may have run`
                : `MCP server "${server.name}" was not connected within ${Duration.format(timeout)}; the call was not sent`
            })
        }),
        Effect.annotateSpans({ server: server.name, tool: tool.tool })
      )
    })

    const awaitStartup = catalogue.changes.pipe(
      Stream.filter((current) => current.servers.every((server) => server.state !== "connecting")),
      Stream.runHead,
      Effect.flatMap((current) => {
        const failed = Option.match(current, {
          onNone: () => [],
          onSome: (value) => value.servers.filter((server) => server.state === "failed")
        })
        return failed.length === 0
          ? Effect.void
          : Effect.fail(new McpStartupError({ servers: failed.map((server) => ({ name: server.name, error: server.error ?? "unknown error" })) }))
      })
    )

    return {
      current: () => latest,
      catalogue: SubscriptionRef.get(catalogue),
      changes: catalogue.changes,
      call,
      awaitStartup
    } satisfies McpClientsShape
  })

/** The MCP clients as a service. */
export class McpClients extends Context.Tag("tape/McpClients")<McpClients, McpClientsShape>() {
  /** Connects to `servers` on start (without waiting for them; see `awaitStartup`); closes them with the layer. */
  static readonly layer = (servers: ReadonlyArray<McpServerConfig>, limits?: McpLimits): Layer.Layer<McpClients> =>
    Layer.scoped(McpClients, make(servers, limits))
  /** No servers: an empty MCP catalogue. */
  static readonly Test: Layer.Layer<McpClients> = McpClients.layer([])
}
