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

/** A tool failed; `message` is shown to the model so it can correct itself. */
export class ToolError extends Data.TaggedError("ToolError")<{ readonly message: string; readonly cause?: unknown }> {}

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

/** A tool with its arg types erased, as the catalogue holds it; validation happens inside. */
export interface AnyTool {
  readonly name: string
  /** One line for the model's system prompt and the UI card. */
  readonly description: string
  /** The args in a few words for the model (field, type, meaning). */
  readonly argsDoc: string
  /** The args' JSON Schema, as the model is offered the tool. */
  readonly parameters: { readonly [key: string]: unknown }
  /** Default approval policy. */
  readonly policy: ApprovalPolicy
  /** Decodes then re-encodes: the canonical args the tape stores, or Schema's formatted error. Pure. */
  readonly validate: (args: unknown) => Either.Either<JsonObject, string>
  /** Validates, then runs; bad args fail with a ToolError. */
  readonly run: (args: unknown) => Effect.Effect<ToolOutput, ToolError>
}

/** Erases a tool's arg types so tools of different args can sit in one catalogue. */
export const eraseTool = <A, I extends JsonObject>(tool: Tool<A, I>): AnyTool => {
  const decode = Schema.decodeUnknownEither(tool.args, { onExcessProperty: "error" })
  const encode = Schema.encodeEither(tool.args)
  // Bounded and without the value: args come from the model or a user and may be huge or deeply nested.
  const format = (error: ParseResult.ParseError) => describeParseError(error)
  return {
    name: tool.name,
    description: tool.description,
    argsDoc: argsDocOf(tool.args),
    parameters: { ...JSONSchema.make(tool.args) },
    policy: tool.policy,
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

/** `{ path: string — a path relative to the workspace; limit?: number }` from the schema's JSON Schema. */
const argsDocOf = <A, I>(schema: Schema.Schema<A, I>): string => {
  const json = JSONSchema.make(schema)
  if (!("properties" in json) || json.properties === undefined) return JSON.stringify(json)
  const required = new Set("required" in json && Array.isArray(json.required) ? json.required : [])
  const fields = Object.entries(json.properties).map(([key, property]) => {
    const type = "type" in property && typeof property.type === "string" ? property.type : "value"
    const note = "description" in property && typeof property.description === "string" ? ` — ${property.description}` : ""
    return `${key}${required.has(key) ? "" : "?"}: ${type}${note}`
  })
  return `{ ${fields.join("; ")} }`
}
