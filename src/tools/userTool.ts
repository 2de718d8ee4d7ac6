/**
 * A user's tool (the config file's `tools`) as a catalogue tool: its args checked by its Effect Schema or Standard
 * Schema, its policy function asked per call, its `run` (value, Promise or Effect) bounded in time and output, and
 * aborted through `signal` when the call is interrupted. User code is untrusted: whatever it throws is data.
 */
import { Cause, Duration, Effect, Either, Exit, JSONSchema, type ParseResult, Schema } from "effect"
import type { StandardSchemaV1, UserTool } from "../config/file.ts"
import type { JsonObject } from "../domain/Event.ts"
import { describeParseError, describeThrown } from "../domain/safeJson.ts"
import { type AnyTool, type ApprovalPolicy, ToolError, type ToolOutput } from "./Tool.ts"

/** Characters of a user tool's output kept for the model; more is cut and marked. */
export const USER_OUTPUT_CHARS = 64 * 1024
const DEFAULT_TIMEOUT_MS = 60_000

const isRecord = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v)

/** The JSON Schema of an Effect Schema, or a plain object schema when it cannot be said. */
const jsonSchemaOf = (schema: Schema.Schema.Any): { readonly [key: string]: unknown } => {
  try {
    return { ...JSONSchema.make(schema) }
  } catch {
    return { type: "object" }
  }
}

type Validate = (args: unknown) => Either.Either<{ readonly value: unknown; readonly canonical: JsonObject }, string>

const effectValidator = (schema: Schema.Schema<unknown, unknown>): Validate => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })
  const encode = Schema.encodeEither(schema)
  return (args) =>
    Either.flatMap(
      Either.mapLeft(decode(args), (e: ParseResult.ParseError) => describeParseError(e)),
      (value) =>
        Either.match(encode(value), {
          onLeft: (e) => Either.left(describeParseError(e)),
          onRight: (encoded) => (isRecord(encoded) ? Either.right({ value, canonical: encoded }) : Either.left("the args must be an object"))
        })
    )
}

const standardValidator = (schema: StandardSchemaV1): Validate => (args) => {
  try {
    const result = schema["~standard"].validate(args)
    if (result instanceof Promise) {
      void result.catch(() => undefined)
      return Either.left("this tool's args schema validates asynchronously; the config must use a synchronous one")
    }
    if (result.issues !== undefined) {
      const shown = result.issues.slice(0, 5).map((issue) => {
        const path = (issue.path ?? []).map((p) => String(typeof p === "object" && p !== null && "key" in p ? p.key : p)).join(".")
        return `${path === "" ? "" : `${path}: `}${String(issue.message).slice(0, 160)}`
      })
      return Either.left(shown.join("; ") || "the args are not valid")
    }
    return isRecord(args) ? Either.right({ value: result.value, canonical: args }) : Either.left("the args must be an object")
  } catch (thrown) {
    return Either.left(`the args schema failed: ${describeThrown(thrown, 160)}`)
  }
}

/** What `run` returned, as text for the model (a string as it is, anything else as JSON), capped. */
const outputOf = (value: unknown): Either.Either<ToolOutput, string> => {
  let text: string
  if (typeof value === "string") text = value
  else if (value === undefined) text = ""
  else {
    try {
      text = JSON.stringify(value) ?? ""
    } catch (thrown) {
      return Either.left(`the tool returned a value that is not JSON (${describeThrown(thrown, 120)})`)
    }
  }
  return Either.right(text.length > USER_OUTPUT_CHARS ? { output: text.slice(0, USER_OUTPUT_CHARS), truncated: true } : { output: text, truncated: false })
}

/** Runs user code that may return a value, a Promise or an Effect, as an Effect that never dies. */
const invoke = (thunk: () => unknown): Effect.Effect<unknown, ToolError> =>
  Effect.suspend(() => {
    const result = thunk()
    if (Effect.isEffect(result)) {
      return Effect.exit(result as Effect.Effect<unknown, unknown>).pipe(
        Effect.flatMap((exit) =>
          Exit.isSuccess(exit) ? Effect.succeed(exit.value) : Effect.fail(new ToolError({ message: describeThrown(Cause.squash(exit.cause), 500) }))
        )
      )
    }
    if (result instanceof Promise) return Effect.tryPromise({ try: () => result, catch: (e) => new ToolError({ message: describeThrown(e, 500) }) })
    return Effect.succeed(result)
  }).pipe(Effect.catchAllDefect((d) => Effect.fail(new ToolError({ message: describeThrown(d, 500) }))))

/** The catalogue tool of a user's `tool({...})` named `name`. */
export const fromUserTool = (name: string, t: UserTool): AnyTool => {
  const standard = !Schema.isSchema(t.args)
  const validate: Validate = standard ? standardValidator(t.args as StandardSchemaV1) : effectValidator(t.args as Schema.Schema<unknown, unknown>)
  const parameters = t.jsonSchema ?? (standard ? { type: "object" } : jsonSchemaOf(t.args as Schema.Schema.Any))
  const timeout = Duration.millis(t.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  const policy = (args: JsonObject): ApprovalPolicy => {
    if (t.policy === "ask" || t.policy === "auto" || t.policy === undefined) return t.policy ?? "ask"
    try {
      const checked = validate(args)
      const chosen: unknown = Either.isRight(checked) ? t.policy(checked.right.value) : "ask"
      // Anything but a clear "auto" asks: a policy that throws or answers nonsense never approves by itself.
      return chosen === "auto" ? "auto" : "ask"
    } catch {
      return "ask"
    }
  }
  return {
    name,
    description: t.description,
    parameters,
    source: "config",
    policy,
    policyShown: typeof t.policy === "function" ? "depends" : (t.policy ?? "ask"),
    validate: (args) => Either.map(validate(args), (v) => v.canonical),
    run: (args, context) =>
      Effect.gen(function* () {
        const checked = validate(args)
        if (Either.isLeft(checked)) return yield* new ToolError({ message: `invalid args for ${name}: ${checked.left}` })
        const controller = new AbortController()
        const value = yield* invoke(() => t.run(checked.right.value, { signal: controller.signal, session: context.session, callId: context.callId })).pipe(
          Effect.onInterrupt(() => Effect.sync(() => controller.abort())),
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => {
              controller.abort()
              return new ToolError({ message: `${name} did not finish within ${Duration.format(timeout)} and was stopped (it may have done part of its work)` })
            }
          })
        )
        const out = outputOf(value)
        return Either.isRight(out) ? out.right : yield* new ToolError({ message: out.left })
      }).pipe(Effect.withSpan("Tool.user", { attributes: { tool: name } }))
  }
}
