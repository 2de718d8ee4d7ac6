/**
 * The model as a stream of chunks: LLM memory and tool catalogue in, text deltas and complete tool calls out,
 * through the BAML `Chat` function. Owns the only dependency on baml_client; it decides nothing about sessions.
 * OpenAI-style and Anthropic providers take the fast path (BAML builds the request and parses the text; we
 * send it and read the SSE stream: every chunk, with usage); others (Bedrock) go through BAML's own stream.
 */
import { BamlAbortError, BamlClientHttpError, BamlValidationError, getLogLevel, setLogLevel, toBamlError } from "@boundaryml/baml"
import { Context, Data, Effect, Layer, Runtime, Stream } from "effect"
import { b } from "../../baml_client/index.ts"
import type * as baml from "../../baml_client/types.ts"
import type { JsonObject } from "../domain/Event.ts"
import type { LlmMemory } from "../domain/projections/memoryTypes.ts"
import { loadScript, OfflineEndpoint, type OfflineOptions, type Script, ScriptError, serveOffline, TURN_HEADER } from "./offline.ts"
import { type Env, type Provider, providerKind, type ProviderKind, selectProvider } from "./provider.ts"
import { makeReplyScanner } from "./replyScanner.ts"
import type { TokenUsage } from "./sse.ts"
import { dialectOf, prepareRequest, RETRY_POLICIES, retryableStatus, streamChat, StreamRequestError } from "./streamRequest.ts"
import { neutralise } from "./untrusted.ts"

/** One entry of the tool catalogue shown to the model. */
export interface ToolDoc {
  readonly name: string
  /** One line: what the tool does. */
  readonly description: string
  /** Its arguments, for the system prompt, e.g. `{ code: string }`. */
  readonly argsDoc: string
}

/** What one model call needs. */
export interface LlmInput {
  readonly memory: LlmMemory
  readonly tools: ReadonlyArray<ToolDoc>
  /** The turn this call serves; retries of the call carry it, so a scripted model replays the same entry. */
  readonly turnId: string
}

/** Token usage of a call. */
export interface LlmUsage {
  readonly inputTokens: number
  readonly outputTokens: number
}

/** One piece of a streamed reply. */
export type LlmChunk =
  /** New text only (never a repeat of text already emitted). */
  | { readonly type: "delta"; readonly text: string }
  /** A complete tool call, emitted once. */
  | { readonly type: "tool_call"; readonly tool: string; readonly args: JsonObject; readonly description?: string }
  /** The reply ended normally. */
  | { readonly type: "done"; readonly usage?: LlmUsage }

/** The provider failed after the retries, or the reply could not be parsed. */
export class LlmError extends Data.TaggedError("LlmError")<{
  readonly message: string
  /** Whether trying again later may succeed (overload, 5xx, network), as opposed to a bad key or request. */
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

/** The model service. */
export interface LlmClientService {
  readonly kind: ProviderKind
  /** Display name for TurnStarted.model. */
  readonly model: string
  /** Streams one reply. Interrupting the stream aborts the HTTP request. */
  readonly stream: (input: LlmInput) => Stream.Stream<LlmChunk, LlmError>
}

// ---------------------------------------------------------------------------------------------
// Pure conversions (exported for unit tests)

/**
 * The memory projection as the BAML `Chat` function's messages. Every string in it came from outside (users,
 * tools, files, HTTP bodies, imported tapes, the model's own echo of them), so each passes `neutralise` here.
 */
export const toChatMessages = (memory: LlmMemory): Array<baml.ChatMessage> =>
  memory.messages.map((m) =>
    m.role === "user"
      ? { role: "user", text: neutralise(m.text), toolCalls: [] }
      : {
          role: "assistant",
          text: neutralise(m.text),
          toolCalls: m.toolCalls.map((c) => ({
            callId: neutralise(c.callId, "attribute"),
            tool: neutralise(c.tool, "attribute"),
            argsJson: neutralise(JSON.stringify(c.args)),
            result: neutralise(c.result)
          }))
        }
  )

/** The tool catalogue as the BAML `Chat` function's tools: names and docs come from configs and MCP servers too. */
export const toToolSpecs = (tools: ReadonlyArray<ToolDoc>): Array<baml.ToolSpec> =>
  tools.map((t) => ({ name: neutralise(t.name, "line"), description: neutralise(t.description, "line"), argsDoc: neutralise(t.argsDoc, "line") }))

type BamlToolCall = baml.Reply["toolCalls"][number]
type ToolCallChunk = Extract<LlmChunk, { type: "tool_call" }>

const isOtherCall = (call: BamlToolCall): call is baml.OtherToolCall => "args" in call

/** A parsed BAML tool call as `{ tool, args, description? }`. */
export const toToolCall = (call: BamlToolCall): ToolCallChunk => {
  const description = call.description === undefined || call.description === null || call.description === "" ? {} : { description: call.description }
  const args = ((): JsonObject => {
    if ("code" in call) return { code: call.code }
    if ("url" in call) return { url: call.url }
    if ("path" in call) return typeof call.path === "string" ? { path: call.path } : {}
    // OtherToolCall: its args as given, even under a known tool's name (args that fit no class).
    return isOtherCall(call) && call.args !== undefined && call.args !== null ? { ...call.args } : {}
  })()
  return { type: "tool_call", tool: call.tool, args, ...description }
}

/** Progress through one reply: text already emitted, tool calls already emitted. */
export interface ReplyProgress {
  readonly text: string
  readonly toolCalls: number
  /** A partial whose text did not extend what was emitted (e.g. a retry that said something else). */
  readonly diverged: boolean
}

export const emptyProgress: ReplyProgress = { text: "", toolCalls: 0, diverged: false }

/**
 * The chunks a (partial) reply adds to `progress`: the text past what was emitted, then tool calls
 * not yet emitted. A retry restarts BAML's partials from empty; that re-sent prefix adds nothing.
 */
export const advance = (
  progress: ReplyProgress,
  reply: { readonly text?: string | null | undefined; readonly toolCalls: ReadonlyArray<BamlToolCall> }
): { progress: ReplyProgress; chunks: Array<LlmChunk> } => {
  const chunks: Array<LlmChunk> = []
  let { diverged, text } = progress
  const next = reply.text ?? ""
  if (next.length > text.length) {
    if (next.startsWith(text)) {
      chunks.push({ type: "delta", text: next.slice(text.length) })
      text = next
    } else diverged = true
  }
  const calls = reply.toolCalls.slice(progress.toolCalls).map(toToolCall)
  chunks.push(...calls)
  return { progress: { text, toolCalls: progress.toolCalls + calls.length, diverged }, chunks }
}

const firstLine = (s: string, max = 300): string => {
  const line = s.split("\n").find((l) => l.trim() !== "") ?? s
  return line.length > max ? `${line.slice(0, max)}…` : line
}

/** The provider's own error message from an OpenAI/Anthropic-style JSON error body, if any. */
const providerMessage = (body: string | undefined): string | undefined => {
  if (body === undefined) return undefined
  const start = body.indexOf("{")
  if (start < 0) return undefined
  try {
    const parsed: unknown = JSON.parse(body.slice(start))
    if (typeof parsed !== "object" || parsed === null || !("error" in parsed)) return undefined
    const error = parsed.error
    if (typeof error === "string") return error
    if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") return error.message
  } catch {
    return undefined
  }
  return undefined
}

/**
 * The part of a partial reply's text that later partials will extend. BAML's partial parser leaves a
 * `\uXXXX` escape of an unfinished string undecoded (and garbled), and reads a trailing lone `\` as text;
 * either would make the streamed text diverge from the final reply, so such text waits for a later chunk.
 */
export const stablePartial = <R extends { readonly text?: string | null | undefined }>(raw: string, partial: R): R | undefined => {
  if (/(?:^|[^\\])(?:\\\\)*\\(?:u[0-9a-fA-F]{0,3})?$/.test(raw)) return undefined
  const text = partial.text
  const cut = typeof text === "string" ? text.search(/\\u[0-9a-fA-F]/) : -1
  return cut < 0 || typeof text !== "string" ? partial : { ...partial, text: text.slice(0, cut) }
}

/** Token usage as reported on `done`, when the provider gave both counts. */
export const toUsage = (usage: TokenUsage): LlmUsage | undefined =>
  usage.inputTokens === undefined || usage.outputTokens === undefined ? undefined : { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens }

/** A failure of the fast path as an LlmError, worded like BAML's own failures. */
const fromStreamRequest = (error: StreamRequestError): LlmError => {
  switch (error.reason) {
    case "status": {
      const status = error.status ?? 0
      return new LlmError({
        message: `provider error ${status}: ${providerMessage(error.detail) ?? firstLine(error.detail)}`,
        retryable: retryableStatus(status),
        cause: error
      })
    }
    case "network":
      return new LlmError({ message: `connection to the model failed: ${firstLine(error.detail)}`, retryable: true, cause: error })
    case "provider":
      return new LlmError({ message: `provider error: ${firstLine(error.detail)}`, retryable: true, cause: error })
    default: {
      const _exhaustive: never = error.reason
      return _exhaustive
    }
  }
}

/** A BAML (or fast-path) failure as an LlmError with a short, readable message. */
export const toLlmError = (cause: unknown): LlmError => {
  if (cause instanceof StreamRequestError) return fromStreamRequest(cause)
  const error = cause instanceof Error ? toBamlError(cause) : toBamlError(new Error(String(cause)))
  if (error instanceof BamlClientHttpError) {
    const status = error.status_code
    const body = error.raw_response ?? error.message.slice(error.message.indexOf("\n") + 1)
    const detail = providerMessage(body) ?? firstLine(error.message.replace(/^(?:\w+: )+/, ""))
    if (status >= 100) {
      return new LlmError({
        message: `provider error ${status}: ${detail}`,
        retryable: retryableStatus(status),
        cause: error
      })
    }
    return new LlmError({ message: `connection to the model failed: ${detail}`, retryable: true, cause: error })
  }
  if (error instanceof BamlValidationError) {
    return new LlmError({ message: `the model's reply could not be parsed: ${firstLine(error.message)}`, retryable: true, cause: error })
  }
  if (error instanceof BamlAbortError) return new LlmError({ message: "the model call was aborted", retryable: true, cause: error })
  return new LlmError({ message: firstLine(error.message, 500), retryable: false, cause: error })
}

// ---------------------------------------------------------------------------------------------
// The service

/** Builds the service for `provider`: every call is a fresh request with its own AbortController. */
export const makeLlmClient = (provider: Provider): LlmClientService => {
  const local = provider.kind === "offline" || provider.kind === "scripted"
  const dialect = dialectOf(provider.client)
  const policy = RETRY_POLICIES[provider.client.retryPolicy]
  const stream = (input: LlmInput): Stream.Stream<LlmChunk, LlmError> =>
    Stream.asyncPush<LlmChunk, LlmError>(
      (emit) =>
        Effect.acquireRelease(
          Effect.map(Effect.runtime<never>(), (runtime) => {
            const controller = new AbortController()
            const { signal } = controller
            const state = { finished: false }
            const drive = async () => {
              let progress = emptyProgress
              const push = (reply: Parameters<typeof advance>[1]) => {
                const step = advance(progress, reply)
                progress = step.progress
                // After an interrupt nothing more may leave, even if a chunk was already on its way.
                for (const chunk of step.chunks) if (!signal.aborted) emit.single(chunk)
              }
              const finish = (usage: LlmUsage | undefined) => {
                state.finished = true
                if (progress.diverged) {
                  Runtime.runFork(runtime)(Effect.logWarning(`turn ${input.turnId}: the streamed text diverged from the final reply`))
                }
                emit.single(usage === undefined ? { type: "done" } : { type: "done", usage })
                emit.end()
              }
              try {
                const registry = local ? provider.registryWith({ [TURN_HEADER]: input.turnId }) : provider.registry
                const messages = toChatMessages(input.memory)
                const tools = toToolSpecs(input.tools)
                if (dialect !== undefined) {
                  // BAML renders the prompt and the provider's body; sending and reading it here sees every
                  // SSE chunk as it lands (BAML's stream batches them) and the usage chunk.
                  const request = prepareRequest(await b.streamRequest.Chat(messages, tools, { clientRegistry: registry }), dialect)
                  if (signal.aborted) return
                  // The text streams from an incremental scan of the raw reply (O(chunk) per read); BAML parses
                  // the whole reply only once the text has closed, on reads that may complete a tool call (a `}`),
                  // when the reply has another shape (then on every read, as the scan cannot help), and at the end.
                  let scanner = makeReplyScanner()
                  let seen = ""
                  // Whether the text of this attempt so far is exactly `progress.text` (false after a retry until
                  // the retry has caught up with what was emitted; until then `attempt` holds its text).
                  let inSync = true
                  let attempt = ""
                  const pushText = (text: string) => {
                    if (inSync) {
                      progress = { ...progress, text: progress.text + text }
                      if (!signal.aborted) emit.single({ type: "delta", text })
                      return
                    }
                    attempt += text
                    push({ text: attempt, toolCalls: [] })
                    if (!progress.diverged && progress.text === attempt) {
                      inSync = true
                      attempt = ""
                    }
                  }
                  const parsePartial = (raw: string) => {
                    const partial = (() => {
                      try {
                        return b.parseStream.Chat(raw)
                      } catch {
                        // Nothing parseable yet (e.g. prose before the JSON): wait for more.
                        return undefined
                      }
                    })()
                    const stable = partial === undefined ? undefined : stablePartial(raw, partial)
                    if (stable !== undefined) push(stable)
                  }
                  const result = await streamChat({
                    request,
                    dialect,
                    policy,
                    signal,
                    onText: (raw) => {
                      if (signal.aborted) return
                      let chunk: string
                      if (raw.length > seen.length && raw.startsWith(seen)) chunk = raw.slice(seen.length)
                      else {
                        // A retry: its reply starts again from "".
                        scanner = makeReplyScanner()
                        inSync = progress.text === ""
                        attempt = ""
                        chunk = raw
                      }
                      seen = raw
                      let state = scanner.state
                      if (state === "prefix" || state === "text") {
                        const text = scanner.push(chunk)
                        if (text !== "") pushText(text)
                        state = scanner.state
                        if (state === "prefix" || state === "text") return
                      }
                      if (state === "closed" && !chunk.includes("}")) return
                      parsePartial(raw)
                    }
                  })
                  if (signal.aborted) return
                  const final = b.parse.Chat(result.raw)
                  push(final)
                  // The final parse is the truth: say so when the streamed text is not what it says.
                  if (!progress.diverged && (final.text ?? "") !== progress.text) progress = { ...progress, diverged: true }
                  finish(toUsage(result.usage))
                  return
                }
                const reply = b.stream.Chat(messages, tools, { clientRegistry: registry, signal })
                for await (const partial of reply) {
                  if (signal.aborted) return
                  push(partial)
                }
                const final = await reply.getFinalResponse()
                if (signal.aborted) return
                push(final)
                finish(undefined)
              } catch (cause) {
                state.finished = true
                if (!signal.aborted) emit.fail(toLlmError(cause))
              }
            }
            void drive()
            return { controller, state }
          }),
          ({ controller, state }) => Effect.sync(() => (state.finished ? undefined : controller.abort()))
        ),
      { bufferSize: "unbounded" }
    ).pipe(Stream.withSpan("LlmClient.stream", { attributes: { turnId: input.turnId, provider: provider.kind, model: provider.model } }))
  return { kind: provider.kind, model: provider.model, stream }
}

// BAML logs every prompt at info level; keep it to warnings unless BAML_LOG asks otherwise.
const quietBaml = Effect.sync(() => {
  if (process.env["BAML_LOG"] === undefined && getLogLevel().toLowerCase() !== "warn") setLogLevel("warn")
})

/** The model service (`"tape/LlmClient"`). */
export class LlmClient extends Context.Tag("tape/LlmClient")<LlmClient, LlmClientService>() {
  /** Provider from `env`; starts the in-process endpoint (for the life of the layer) when offline or scripted. */
  static layerFromEnv(env: Env): Layer.Layer<LlmClient, ScriptError> {
    return Layer.scoped(
      LlmClient,
      Effect.gen(function* () {
        yield* quietBaml
        const kind = providerKind(env)
        if (kind === "offline" || kind === "scripted") {
          const script = kind === "scripted" ? yield* loadScript(env["LLM_SCRIPT"] ?? "") : undefined
          const endpoint = yield* serveOffline(script === undefined ? {} : { script })
          return makeLlmClient(selectProvider(env, endpoint))
        }
        return makeLlmClient(selectProvider(env))
      })
    )
  }

  /** Provider from `process.env` (read when the layer is built). */
  static readonly layer: Layer.Layer<LlmClient, ScriptError> = Layer.unwrapEffect(
    Effect.sync(() => LlmClient.layerFromEnv(process.env))
  )

  /** A scripted model (a script or the path of a script file), exposing its endpoint for assertions. */
  static layerScripted(script: Script | string): Layer.Layer<LlmClient | OfflineEndpoint, ScriptError> {
    return LlmClient.layerLocal(typeof script === "string" ? loadScript(script) : Effect.succeed(script))
  }

  /** The offline model, exposing its endpoint for assertions. */
  static layerOffline(options: Omit<OfflineOptions, "script"> = {}): Layer.Layer<LlmClient | OfflineEndpoint> {
    return LlmClient.layerLocal(Effect.succeed(undefined), options)
  }

  private static layerLocal<E>(
    script: Effect.Effect<Script | undefined, E>,
    options: Omit<OfflineOptions, "script"> = {}
  ): Layer.Layer<LlmClient | OfflineEndpoint, E> {
    const endpoint = Layer.scoped(
      OfflineEndpoint,
      Effect.flatMap(script, (s) => serveOffline(s === undefined ? options : { ...options, script: s }))
    )
    const client = Layer.effect(
      LlmClient,
      Effect.zipRight(quietBaml, OfflineEndpoint).pipe(
        Effect.map((e) => makeLlmClient(selectProvider(e.mode === "scripted" ? { LLM_SCRIPT: "inline" } : {}, e)))
      )
    )
    return Layer.provideMerge(client, endpoint)
  }
}

export { OfflineEndpoint, ScriptError }
