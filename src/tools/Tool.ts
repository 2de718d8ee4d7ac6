/**
 * The contract every tool keeps: a name, an Effect Schema for its args, an approval policy, and a run.
 * A tool error is data for the model (ToolError), never a defect; interrupting `run` must stop the work.
 */
import { Data, type Effect, type Schema } from "effect"

export type ApprovalPolicy = "ask" | "auto"

/** What a tool returns on success: text for the model, size-capped, `truncated` when cut. */
export interface ToolOutput {
  readonly output: string
  readonly truncated: boolean
}

/** A tool failed; `message` is shown to the model so it can correct itself. */
export class ToolError extends Data.TaggedError("ToolError")<{ readonly message: string; readonly cause?: unknown }> {}

export interface Tool<A = any> {
  readonly name: string
  /** One line for the model's system prompt and the UI card. */
  readonly description: string
  /** Validates the model's (or user's edited) args. */
  readonly args: Schema.Schema<A, any>
  /** Default approval policy; `eval` and `http_get` default to `ask`. */
  readonly policy: ApprovalPolicy
  /** Runs the tool; interruption of this Effect tears the work down (sandbox disposed, request aborted). */
  readonly run: (args: A) => Effect.Effect<ToolOutput, ToolError>
}
