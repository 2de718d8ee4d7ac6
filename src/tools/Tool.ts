/**
 * The contract every tool keeps: a name, an Effect Schema for its args, an approval policy, and a run.
 * A tool error is data for the model (ToolError), never a defect; interrupting `run` must stop the work.
 */
import { Data, Effect, Either, JSONSchema, ParseResult, Schema } from "effect"
import type { JsonObject } from "../domain/Event.ts"
import { describeParseError } from "../domain/safeJson.ts"

/** `ask`: a user approves each call; `auto`: approved by policy. */
export type ApprovalPolicy = "ask" | "auto"

/** What a tool returns on success: text for the model, size-capped, `truncated` when cut. */
export interface ToolOutput {
  readonly output: string
  readonly truncated: boolean
}

/**
 * A tool failed; `message` is shown to the model so it can correct itself. `mayHaveRun`: the call was under way
 * when it broke off (a server that vanished mid-call), so it may have had effects: the tape records it as cancelled
 * with outcome unknown, not as a plain failure.
 */
export class ToolError extends Data.TaggedError("ToolError")<{ readonly message: string; readonly mayHaveRun?: boolean; readonly cause?: unknown }> {}

/** Which call a run is (interruption, not a signal, is how a run is stopped). */
export interface CallContext {
  readonly session: string
  readonly callId: string
}

/** Where a tool comes from: built in, the config file's `tools`, or an MCP server. */
export type ToolSource = "builtin" | "config" | `mcp:${string}`

/** A tool whose args decode from `I` (the JSON the tape stores) to `A` (what `run` gets). */
export interface Tool<A, I extends JsonObject = JsonObject> {
  readonly name: string
  /** One line for the model's system prompt and the UI card. */
  readonly description: string
  /** Validates the model's (or user's edited) args. */
  readonly args: Schema.Schema<A, I>
  /** Default approval policy; `eval` and `http_get` default to `ask`. */
  readonly policy: ApprovalPolicy
  /** Runs the tool; interruption of this Effect tears the work down (sandbox disposed, request aborted). */
  readonly run: (args: A) => Effect.Effect<ToolOutput, ToolError>
}

/** A tool with its arg types erased, as the catalogue holds it, whatever its source. */
export interface AnyTool {
  readonly name: string
  /** One line for the model's system prompt and the UI card. */
  readonly description: string
  /** The args' JSON Schema, as the model is offered the tool. */
  readonly parameters: { readonly [key: string]: unknown }
  readonly source: ToolSource
  /** The policy for these (valid, canonical) args; `ask` when it cannot say. Pure, synchronous, never throws. */
  readonly policy: (args: JsonObject) => ApprovalPolicy
  /** How the policy reads in a listing: fixed, or chosen per call by the tool's own function. */
  readonly policyShown: ApprovalPolicy | "depends"
  /** The canonical args the tape stores, or a bounded error (never the value). Pure, synchronous, never throws. */
  readonly validate: (args: unknown) => Either.Either<JsonObject, string>
  /** Runs a call with valid args; interruption stops the work. */
  readonly run: (args: JsonObject, context: CallContext) => Effect.Effect<ToolOutput, ToolError>
}

/** Erases a built-in tool's arg types so tools of different args can sit in one catalogue. */
export const eraseTool = <A, I extends JsonObject>(tool: Tool<A, I>, policy: ApprovalPolicy = tool.policy): AnyTool => {
  const decode = Schema.decodeUnknownEither(tool.args, { onExcessProperty: "error" })
  const encode = Schema.encodeEither(tool.args)
  // Bounded and without the value: args come from the model or a user and may be huge or deeply nested.
  const format = (error: ParseResult.ParseError) => describeParseError(error)
  return {
    name: tool.name,
    description: tool.description,
    parameters: { ...JSONSchema.make(tool.args) },
    source: "builtin",
    policy: () => policy,
    policyShown: policy,
    validate: (args) =>
      decode(args).pipe(
        Either.flatMap(encode),
        Either.mapBoth({ onLeft: format, onRight: (encoded): JsonObject => encoded })
      ),
    run: (args) =>
      Either.match(decode(args), {
        onLeft: (error) => Effect.fail(new ToolError({ message: `invalid args for ${tool.name}: ${format(error)}` })),
        onRight: tool.run
      })
  }
}
