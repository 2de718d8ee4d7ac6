/**
 * One connection to one MCP server through the SDK's Client (stdio child process or Streamable HTTP), as a scoped
 * resource: it ends when the process exits, the network breaks or a message is over the size limit, and says why.
 * It lists and calls; supervision (restarts, state, catalogue) is McpClients' job.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js"
import type { FetchLike, Transport } from "@modelcontextprotocol/sdk/shared/transport.js"
import { ErrorCode, McpError, ResultSchema, ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js"
import { Deferred, Duration, Effect, type Scope } from "effect"
import type { JsonObject } from "../domain/Event.ts"
import type { McpServerConfig } from "./config.ts"
import type { McpCallFailure } from "./errors.ts"
import type { McpLimits } from "./limits.ts"
import { cleanText } from "./tools.ts"
import packageJson from "../../package.json" with { type: "json" }

/** A live connection. */
export interface Connection {
  /** Completes, with the reason, once the connection is gone (exit, network, hostile message, or closed by us). */
  readonly closed: Effect.Effect<string>
  /** Every tool the server lists, pages followed up to the limits; or why listing failed. */
  readonly listTools: Effect.Effect<ReadonlyArray<unknown>, string>
  /**
   * Sends `tools/call` and waits for the answer (a JSON object, not yet bounded). Interrupting the effect aborts the
   * request, which makes the SDK send `notifications/cancelled` for it. `onSent` runs when it is handed to the transport.
   */
  readonly callTool: (
    tool: string,
    args: JsonObject,
    options: { readonly backstopMs: number; readonly onSent: () => void }
  ) => Effect.Effect<JsonObject, CallFailure>
}

/** A call's failure as the connection sees it. */
export interface CallFailure {
  readonly reason: McpCallFailure
  readonly mayHaveRun: boolean
  readonly message: string
}

const problemChars = 500

const messageOf = (error: unknown): string => cleanText(error instanceof Error ? error.message : String(error), problemChars)

/**
 * Opens a connection: spawns or reaches the server, initializes, and registers `onToolsChanged` for
 * `notifications/tools/list_changed` (called from the SDK's callback: it must be cheap and must not throw).
 * Fails with a readable reason when the server does not start or answer within `limits.startTimeout`.
 */
export const openConnection = (
  config: McpServerConfig,
  limits: McpLimits,
  onToolsChanged: () => void
): Effect.Effect<Connection, string, Scope.Scope> =>
  Effect.gen(function* () {
    const closed = yield* Deferred.make<string>()
    // The first problem since the last good message: what broke the connection, not the noise that followed it.
    let firstProblem: string | undefined
    let closedReason: string | undefined
    let stderrTail = ""
    const withStderr = (problem: string) => {
      const stderr = cleanText(stderrTail.trim(), limits.maxStderrChars)
      return stderr === "" ? problem : `${problem}; its last output on stderr: ${stderr}`
    }
    const client = new Client({ name: "agent-tape", version: packageJson.version }, { capabilities: {} })
    // The SDK reports every oddity of the other side here (bad messages, unknown progress tokens): keep the last one
    // for the error that explains a disconnect; none of them is fatal on its own.
    client.onerror = (error) => {
      firstProblem ??= messageOf(error)
    }
    client.onclose = () => {
      closedReason ??= withStderr(firstProblem ?? (config.transport === "stdio" ? "the server process exited" : "the connection closed"))
      Deferred.unsafeDone(closed, Effect.succeed(closedReason))
    }
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => onToolsChanged())
    const transport = makeTransport(config, limits, {
      onStderr: (text) => {
        stderrTail = (stderrTail + text).slice(-limits.maxStderrChars)
      },
      // The HTTP transport never closes by itself: a broken connection is closed here, which ends every call in flight.
      onLost: (problem) => {
        firstProblem = problem
        void client.close().catch(() => undefined)
      }
    })
    // The Client keeps a handler set before connect and calls it first, for every message.
    transport.onmessage = () => {
      firstProblem = undefined
    }
    yield* Effect.addFinalizer(() => Effect.promise(() => client.close().catch(() => undefined)))

    yield* Effect.tryPromise({
      try: (signal) => client.connect(transport, { signal, timeout: Duration.toMillis(limits.startTimeout) + 1000 }),
      catch: (error) => closedReason ?? withStderr(firstProblem ?? messageOf(error))
    }).pipe(
      Effect.timeoutFail({
        duration: limits.startTimeout,
        onTimeout: () => withStderr(`no answer to initialize within ${Duration.format(limits.startTimeout)}`)
      })
    )

    const request = (method: "tools/list", params: { cursor?: string }) =>
      Effect.tryPromise({
        try: (signal) => client.request({ method, params }, ResultSchema, { signal, timeout: Duration.toMillis(limits.listTimeout) + 1000 }),
        catch: (error) => `${method} failed: ${closedReason ?? messageOf(error)}`
      })

    const listTools = Effect.gen(function* () {
      const listed: Array<unknown> = []
      let cursor: string | undefined
      for (let page = 0; page < limits.maxListPages; page++) {
        const answer = yield* request("tools/list", cursor === undefined ? {} : { cursor })
        const tools: unknown = answer.tools
        if (!Array.isArray(tools)) return yield* Effect.fail("tools/list answered without a tools array")
        for (const tool of tools) listed.push(tool)
        cursor = typeof answer.nextCursor === "string" ? answer.nextCursor : undefined
        // Past the limit the rest would be skipped anyway; a hostile cursor is bounded by maxListPages.
        if (cursor === undefined || listed.length > limits.maxTools) break
      }
      return listed
    }).pipe(
      Effect.timeoutFail({
        duration: limits.listTimeout,
        onTimeout: () => `tools/list did not answer within ${Duration.format(limits.listTimeout)}`
      })
    )

    const classify = (error: unknown): CallFailure => {
      const away = () => closedReason ?? firstProblem ?? messageOf(error)
      if (error instanceof McpError) {
        if (error.code === ErrorCode.ConnectionClosed)
          return { reason: "disconnected", mayHaveRun: true, message: `the server went away during the call (${away()}); it may have run` }
        if (error.code === ErrorCode.RequestTimeout)
          return { reason: "timeout", mayHaveRun: true, message: "the server did not answer in time; it may have run" }
        return { reason: "server_error", mayHaveRun: false, message: `the server answered with an error: ${messageOf(error)}` }
      }
      if (error instanceof StreamableHTTPError)
        return { reason: "server_error", mayHaveRun: false, message: `the server answered HTTP ${error.code ?? "error"}: ${messageOf(error)}` }
      // The SDK's words for a request made after the transport closed: nothing was sent.
      if (error instanceof Error && error.message === "Not connected")
        return { reason: "unavailable", mayHaveRun: false, message: "the server is not connected; the call was not sent" }
      if (error instanceof Error && "issues" in error)
        return { reason: "invalid_result", mayHaveRun: false, message: `the server answered with something that is not a tool result: ${messageOf(error)}` }
      return { reason: "disconnected", mayHaveRun: true, message: `the connection failed during the call (${away()}); it may have run` }
    }

    return {
      closed: Deferred.await(closed),
      listTools,
      callTool: (tool, args, { backstopMs, onSent }) =>
        Effect.tryPromise({
          try: (signal) => {
            const answer = client.request({ method: "tools/call", params: { name: tool, arguments: { ...args } } }, ResultSchema, {
              signal,
              timeout: backstopMs
            })
            onSent()
            return answer
          },
          catch: classify
        })
    } satisfies Connection
  })

interface TransportHooks {
  readonly onStderr: (text: string) => void
  readonly onLost: (problem: string) => void
}

const makeTransport = (config: McpServerConfig, limits: McpLimits, hooks: TransportHooks): Transport => {
  switch (config.transport) {
    case "stdio": {
      const transport = new StdioClientTransport({
        command: config.command,
        args: [...config.args],
        ...(config.env === undefined ? {} : { env: { ...config.env } }),
        ...(config.cwd === undefined ? {} : { cwd: config.cwd }),
        // Piped, not inherited: a server's stderr must not flood ours; its tail explains why it stopped.
        stderr: "pipe",
        // A longer line (one message) ends the connection instead of growing without bound.
        maxBufferSize: limits.maxMessageBytes
      })
      transport.stderr?.on("data", (chunk: Buffer | string) => hooks.onStderr(String(chunk)))
      return transport
    }
    case "http":
      return new StreamableHTTPClientTransport(new URL(config.url), {
        ...(config.headers === undefined ? {} : { requestInit: { headers: { ...config.headers } } }),
        fetch: boundedFetch(limits.maxMessageBytes, hooks.onLost)
      })
    default: {
      const _exhaustive: never = config
      return _exhaustive
    }
  }
}

/**
 * `fetch` for the HTTP transport that bounds what a server can send — a JSON body, or one SSE event, of at most
 * `maxBytes` — and reports a connection that broke (network error, body cut, session forgotten) to `onLost`. Our own
 * aborts (close, cancellation) are not losses.
 */
export const boundedFetch =
  (maxBytes: number, onLost: (problem: string) => void): FetchLike =>
  async (url, init) => {
    const ours = () => init?.signal?.aborted === true
    const response = await fetch(url, init).catch((error: unknown) => {
      if (!ours()) onLost(`cannot reach the server: ${messageOf(error)}`)
      throw error
    })
    // Streamable HTTP: 404 for a request with a session id means the server no longer knows the session. Reported
    // once the SDK has read this answer and failed its request with the 404 (so it did not run): after the body is
    // read, on a later task, so that closing the connection does not turn that answer into a disconnect.
    const forgotten =
      response.status === 404 && new Headers(init?.headers).has("mcp-session-id")
        ? () => void setTimeout(() => onLost("the server no longer knows our session (HTTP 404)"), 0)
        : undefined
    const body = response.body
    if (body === null) {
      forgotten?.()
      return response
    }
    const eventStream = (response.headers.get("content-type") ?? "").toLowerCase().includes("text/event-stream")
    const reader = body.getReader()
    let size = 0
    let lineEmpty = true
    const bounded = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const next = await reader.read().catch((error: unknown) => {
          if (!ours()) onLost(`the connection broke: ${messageOf(error)}`)
          controller.error(error)
          return undefined
        })
        if (next === undefined) return
        if (next.done) {
          forgotten?.()
          return controller.close()
        }
        const chunk = next.value
        if (eventStream) {
          // The size of one event: bytes since the last blank line.
          for (const byte of chunk) {
            size++
            if (byte === 10) {
              if (lineEmpty) size = 0
              lineEmpty = true
            } else if (byte !== 13) lineEmpty = false
          }
        } else size += chunk.length
        if (size > maxBytes) {
          const problem = `the server sent a message over ${maxBytes} bytes`
          onLost(problem)
          controller.error(new Error(problem))
          void reader.cancel().catch(() => undefined)
          return
        }
        controller.enqueue(chunk)
      },
      cancel: (reason) => {
        forgotten?.()
        return reader.cancel(reason)
      }
    })
    return new Response(bounded, { status: response.status, statusText: response.statusText, headers: response.headers })
  }
