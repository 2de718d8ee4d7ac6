/**
 * The typed failures of the MCP clients: a call that did not give a result (and whether it may have run), and a
 * server that did not start. A tool's own `isError` answer is not here: it is a result.
 */
import { Data } from "effect"

/**
 * Why a call gave no result:
 * - `unknown_tool`, `invalid_args`, `unavailable` (its server is not connected): the call was not sent;
 * - `timeout`, `disconnected` (the server exited, the connection broke, or its answer was over the size limit):
 *   sent and not answered, so it may have run;
 * - `server_error` (the server answered with a protocol error), `invalid_result` (it answered with something that
 *   is not a result): answered, so its failure is known.
 */
export type McpCallFailure = "unknown_tool" | "invalid_args" | "unavailable" | "timeout" | "disconnected" | "server_error" | "invalid_result"

/**
 * A call without a result. `mayHaveRun` is true exactly when the request reached the server and no answer came
 * back (`timeout`, `disconnected`): the runner records `ToolExecutionCancelled{outcome:"unknown"}` then, and
 * `ToolExecutionFailed` otherwise.
 */
export class McpCallError extends Data.TaggedError("McpCallError")<{
  /** The server's name. */
  readonly server: string
  /** The catalogue name (`mcp__<server>__<tool>`) that was called. */
  readonly tool: string
  readonly reason: McpCallFailure
  readonly mayHaveRun: boolean
  /** For the model and the UI: names the server and says what happened. */
  readonly message: string
}> {}

/** Servers that did not start; `message` names each with its error, for a start-up failure. */
export class McpStartupError extends Data.TaggedError("McpStartupError")<{
  readonly servers: ReadonlyArray<{ readonly name: string; readonly error: string }>
}> {
  override get message(): string {
    return this.servers.map((server) => `MCP server "${server.name}" did not start: ${server.error}`).join("\n")
  }
}
