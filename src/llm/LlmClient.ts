/**
 * The model as a stream of chunks: LLM memory and offered tools in, text deltas and complete tool calls out, through
 * the BAML `Chat` function, for one of the configured model choices. Owns the only dependency on baml_client; it
 * decides nothing about sessions. OpenAI-style and Anthropic providers take our own HTTP path (BAML builds the request
 * and parses the reply; streamRequest.ts sends it and reads every SSE chunk, with usage); others (Bedrock) go through
 * BAML's own stream. Both are bounded in time (idle, total) and size (the reply cap).
 */
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { BamlAbortError, BamlClientHttpError, BamlValidationError, getLogLevel, setLogLevel, toBamlError } from "@boundaryml/baml"
import { Chunk, Clock, Config, type ConfigError, Context, Data, Duration, Effect, Either, Exit, Layer, Mailbox, Option, Stream } from "effect"
import { b } from "../../baml_client/index.ts"
import type * as baml from "../../baml_client/types.ts"
import type { JsonObject } from "../domain/Event.ts"
import type { LlmMemory } from "../domain/projections/memoryTypes.ts"
import {
  loadScript,
  MODEL_TURN_HEADER,
  OfflineEndpoint,
  type OfflineEndpointService,
  type OfflineOptions,
  type Script,
  ScriptError,
  serveOffline,
  TASK_HEADER,
  TURN_HEADER
} from "./offline.ts"
import {
  type ClientSpec,
  clientSpec,
  envModelsConfig,
  localChoices,
  makeRegistry,
  type ModelChoices,
  type ModelInfo,
  modelInfos,
  type ModelSpec,
  type ProviderKind
} from "./provider.ts"
import { makeReplyScanner, type ReplyScanner } from "./replyScanner.ts"
import { bamlRetryPolicy, type RetryPolicy } from "./retryPolicy.ts"
import type { TokenUsage } from "./sse.ts"
import { callProvider, type Deadline, type Dialect, dialectOf, type PreparedRequest, prepareRequest, type ProviderPiece, retryableStatus, StreamRequestError } from "./streamRequest.ts"
import { alignArgs, type ToolOffer, toolTypes, toolTypesFor } from "./toolTypes.ts"
import { neutralise, neutraliseJson } from "./untrusted.ts"

/** A tool as the model is offered it: `{ name, description, parameters }`, `parameters` its args' JSON Schema. */
export type LlmTool = ToolOffer

/** What one model call needs. */
export interface LlmInput {
  readonly memory: LlmMemory
  readonly tools: ReadonlyArray<LlmTool>
  /** The turn this call serves; retries of the call carry it. */
  readonly turnId: string
  /**
   * How many model turns the session had before this one (retries excluded), counted from its tape: the scripted
   * model plays this entry, so a restart or another server plays the same one.
   */
  readonly modelTurn: number
  /** The name of a model choice (see `LlmClientService.models`); the default choice when absent. */
  readonly model?: string
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
  /** A complete tool call, emitted once, after all the text. */
  | { readonly type: "tool_call"; readonly tool: string; readonly args: JsonObject; readonly description?: string }
  /** The reply ended normally. */
  | { readonly type: "done"; readonly usage?: LlmUsage }

/** The provider failed after the retries, took too long, sent too much, or the reply could not be parsed. */
export class LlmError extends Data.TaggedError("LlmError")<{
  readonly message: string
  /** Whether trying again later may succeed (overload, 5xx, network, a stall), as opposed to a bad key or request. */
  readonly retryable: boolean
  readonly cause?: unknown
}> {}

/** The model service. */
export interface LlmClientService {
  /** The provider of the default choice. */
  readonly kind: ProviderKind
  /** The name of the default choice (TurnStarted.model when a session picked none). */
  readonly model: string
  /** Every model choice, for `/api/info` and a model picker. */
  readonly models: ReadonlyArray<ModelInfo>
  /** Streams one reply. Interrupting the stream aborts the HTTP request. */
  readonly stream: (input: LlmInput) => Stream.Stream<LlmChunk, LlmError>
  /**
   * One reply, pushed: the chunks of each socket read go to `sink` in order, run by the fiber that read them (no queue
   * and no consumer fiber per chunk: the runner's hot path, issue 15); a failure of `sink` ends the call with it.
   * Interrupting it aborts the HTTP request. `stream` is this behind a bounded buffer.
   */
  readonly run: <X>(input: LlmInput, sink: (chunks: ReadonlyArray<LlmChunk>) => Effect.Effect<void, X>) => Effect.Effect<void, LlmError | X>
  /**
   * The request a call would send for this memory and these tools — the provider's request body, exactly as BAML
   * renders it (system prompt, tool list and answer format, every message and tool result) — without sending it, and
   * without its headers (which carry the keys).
   */
  readonly render: (input: Pick<LlmInput, "memory" | "tools" | "model">) => Effect.Effect<RenderedRequest, LlmError>
  /**
   * A compaction's summary: the BAML `Summarize` function over these memory messages, with the same choice (and the
   * same bounds) as a turn. Interrupting it aborts the request.
   */
  readonly summarize: (input: SummaryInput) => Effect.Effect<string, LlmError>
}

/** What one Summarize call needs. */
export interface SummaryInput {
  /** The memory messages to summarise (those up to the compaction's `upToSeq`). */
  readonly memory: LlmMemory
  /** The name of a model choice; the default choice when absent. */
  readonly model?: string
  /** The session and the compaction's upToSeq (its retries carry them; the in-process endpoint's turn key). */
  readonly session: string
  readonly upToSeq: number
  /** The session's compaction number: a scripted model plays this summary entry. */
  readonly entry: number
}

/** A request as it would be sent: the choice it is for, where it goes, and its body. */
export interface RenderedRequest {
  readonly model: string
  readonly provider: ProviderKind
  readonly url: string
  readonly body: unknown
}

/** The bounds of every call. */
export interface LlmLimits {
  /** No bytes from the provider for this long ends the call (`TAPE_PROVIDER_IDLE_MS`). */
  readonly idleTimeout: Duration.Duration
  /** A call running this long, retries included, ends (`TAPE_PROVIDER_TIMEOUT_MS`). */
  readonly totalTimeout: Duration.Duration
  /** A raw reply longer than this many bytes (UTF-8) ends the call; the text streamed so far stays (`TAPE_MAX_REPLY_BYTES`). */
  readonly maxReplyBytes: number
  /** The longest `Retry-After` waited for; a provider asking for more is not retried. */
  readonly maxRetryAfter: Duration.Duration
}

/** The limits when nothing says otherwise. */
export const DEFAULT_LIMITS: LlmLimits = {
  idleTimeout: Duration.millis(60_000),
  totalTimeout: Duration.millis(600_000),
  maxReplyBytes: 1_048_576,
  maxRetryAfter: Duration.seconds(60)
}

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "expected a whole number greater than 0", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

/** The limits from TAPE_PROVIDER_IDLE_MS, TAPE_PROVIDER_TIMEOUT_MS and TAPE_MAX_REPLY_BYTES; a bad value is a ConfigError naming it. */
export const llmLimitsConfig: Config.Config<LlmLimits> = Config.all({
  idleTimeout: positiveInt("TAPE_PROVIDER_IDLE_MS", Duration.toMillis(DEFAULT_LIMITS.idleTimeout)).pipe(Config.map(Duration.millis)),
  totalTimeout: positiveInt("TAPE_PROVIDER_TIMEOUT_MS", Duration.toMillis(DEFAULT_LIMITS.totalTimeout)).pipe(Config.map(Duration.millis)),
  maxReplyBytes: positiveInt("TAPE_MAX_REPLY_BYTES", DEFAULT_LIMITS.maxReplyBytes),
  maxRetryAfter: Config.succeed(DEFAULT_LIMITS.maxRetryAfter)
})

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
      : m.role === "summary"
        // A summary or trim note: the model sees it as a marked note in the user's turn (a record, not instructions).
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

/**
 * The offered tools on their way into the prompt (the list and the call classes): names, descriptions and every text
 * of the schemas come from configs and MCP servers too, so they pass the one neutralising function like any untrusted
 * text (a tool's name must stay callable: names are already limited to a safe set, which `neutralise` leaves alone).
 */
export const toolsForModel = (tools: ReadonlyArray<LlmTool>): ReadonlyArray<LlmTool> =>
  tools.map((t) => ({ name: neutralise(t.name, "line"), description: neutralise(t.description, "line"), parameters: neutraliseJson(t.parameters) }))

type ToolCallChunk = Extract<LlmChunk, { type: "tool_call" }>

const isRecord = (v: unknown): v is { readonly [key: string]: unknown } => typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * A parsed call (an element of the final reply's `toolCalls`: `{ tool, args?, description? }`) as a chunk, its args
 * aligned with the tool's schema when it was offered; undefined for an element without a tool name.
 */
export const toToolCall = (call: unknown, tools: ReadonlyMap<string, LlmTool>): ToolCallChunk | undefined => {
  if (!isRecord(call) || typeof call["tool"] !== "string" || call["tool"] === "") return undefined
  const tool = call["tool"]
  const given = isRecord(call["args"]) ? call["args"] : {}
  const offered = tools.get(tool)
  const args: JsonObject = offered === undefined ? { ...given } : alignArgs(given, offered.parameters)
  const description = call["description"]
  return { type: "tool_call", tool, args, ...(typeof description === "string" && description !== "" ? { description } : {}) }
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

/** A partial reply is parsed again only once the raw reply has grown by this factor (and at least PARSE_MIN_STEP). */
const PARSE_GROWTH = 1.5
const PARSE_MIN_STEP = 16

/** What builds the text of a reply from its raw pieces (see {@link makeReplyAssembler}). */
export interface ReplyAssembler {
  /** A new attempt starts: its raw reply starts again from "". */
  readonly attempt: () => void
  /** More raw reply text of the current attempt: the deltas it adds, or an LlmError past the reply cap. */
  readonly push: (piece: string) => Either.Either<ReadonlyArray<LlmChunk>, LlmError>
  /** The whole text of a partial reply of the current attempt (BAML's own stream): the deltas it adds, or past the cap. */
  readonly partial: (text: string) => Either.Either<ReadonlyArray<LlmChunk>, LlmError>
  /** The raw reply of the current attempt. */
  readonly raw: () => string
  /** The final reply: its last deltas, then its tool calls; `diverged` when the streamed text is not its text. */
  readonly finish: (text: string, calls: ReadonlyArray<ToolCallChunk>) => { readonly chunks: ReadonlyArray<LlmChunk>; readonly diverged: boolean }
}

/**
 * A reply that is exactly the answer format in strict JSON with no tool call (`{"text":"…","toolCalls":[]}`, or
 * without `toolCalls`): what BAML's schema-aligned parser returns for it, without the call (which costs more than
 * rendering the request). Any other shape (prose around the JSON, a fence, a tool call, another key, a text that is
 * not a string) is left to BAML's parser: undefined.
 */
export const plainReply = (raw: string): baml.Reply | undefined => {
  const text = raw.trim()
  if (!text.startsWith("{") || !text.endsWith("}")) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) if (key !== "text" && key !== "toolCalls") return undefined
  if (typeof record["text"] !== "string") return undefined
  const calls = record["toolCalls"]
  if (calls !== undefined && !(Array.isArray(calls) && calls.length === 0)) return undefined
  return { text: record["text"], toolCalls: [] }
}

/**
 * The text of a reply, chunk by chunk, at a cost bounded per chunk: the text streams from an incremental scan of the
 * raw reply (O(chunk)); a reply of another shape is parsed whole with `parsePartial` only when it has grown by
 * PARSE_GROWTH since the last parse (O(reply) in all, amortised); tool calls come from the final parse only. A retry
 * replays text already emitted: it is compared piece by piece (O(piece)) and only what goes past it is emitted; a
 * retry that says something else emits nothing more (and the reply is `diverged`).
 */
export const makeReplyAssembler = (options: {
  readonly maxReplyBytes: number
  /** The text of the reply so far, from BAML's partial parse (undefined when none can be read yet). */
  readonly parsePartial: (raw: string) => string | undefined
}): ReplyAssembler => {
  let emitted = ""
  let diverged = false
  // Per attempt: the scan, the raw reply, its size, how much of `emitted` it has repeated, when to parse next.
  let scanner: ReplyScanner = makeReplyScanner()
  let raw = ""
  let bytes = 0
  let mode: "sync" | "replay" | "diverged" = "sync"
  let replayed = 0
  let nextParseAt = 0

  const tooLarge = () =>
    new LlmError({ message: `the reply is larger than ${options.maxReplyBytes} bytes (TAPE_MAX_REPLY_BYTES); the text so far is kept`, retryable: false })

  /** New text of this attempt, in order. */
  const more = (text: string): Array<LlmChunk> => {
    if (text === "" || mode === "diverged") return []
    if (mode === "replay") {
      const overlap = Math.min(text.length, emitted.length - replayed)
      if (!emitted.startsWith(text.slice(0, overlap), replayed)) {
        mode = "diverged"
        diverged = true
        return []
      }
      replayed += overlap
      if (replayed < emitted.length) return []
      mode = "sync"
      text = text.slice(overlap)
      if (text === "") return []
    }
    emitted += text
    return [{ type: "delta", text }]
  }

  /** The whole text of this attempt so far (a partial or final parse). */
  const whole = (text: string): Array<LlmChunk> => {
    if (mode === "diverged") return []
    if (text.length <= emitted.length) {
      if (!emitted.startsWith(text)) {
        mode = "diverged"
        diverged = true
      }
      return []
    }
    if (!text.startsWith(emitted)) {
      mode = "diverged"
      diverged = true
      return []
    }
    mode = "sync"
    const delta = text.slice(emitted.length)
    emitted = text
    return [{ type: "delta", text: delta }]
  }

  return {
    attempt: () => {
      scanner = makeReplyScanner()
      raw = ""
      bytes = 0
      mode = emitted === "" ? "sync" : "replay"
      replayed = 0
      nextParseAt = 0
    },
    push: (piece) => {
      bytes += Buffer.byteLength(piece, "utf8")
      if (bytes > options.maxReplyBytes) return Either.left(tooLarge())
      raw += piece
      const before = scanner.state
      const scanned = before === "prefix" || before === "text" ? more(scanner.push(piece)) : []
      if (scanner.state !== "unknown" || raw.length < nextParseAt) return Either.right(scanned)
      nextParseAt = Math.max(raw.length + PARSE_MIN_STEP, Math.ceil(raw.length * PARSE_GROWTH))
      const text = options.parsePartial(raw)
      return Either.right(text === undefined ? scanned : [...scanned, ...whole(text)])
    },
    partial: (text) => (Buffer.byteLength(text, "utf8") > options.maxReplyBytes ? Either.left(tooLarge()) : Either.right(whole(text))),
    raw: () => raw,
    finish: (text, calls) => {
      const chunks = whole(text)
      if (emitted !== text) diverged = true
      return { chunks: [...chunks, ...calls], diverged }
    }
  }
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

/** A failure of our HTTP path as an LlmError, worded like BAML's own failures. */
const fromStreamRequest = (error: StreamRequestError): LlmError => {
  switch (error.reason) {
    case "status": {
      const status = error.status ?? 0
      const wait = error.retryAfter === undefined ? "" : ` (it asks to retry after ${Duration.format(error.retryAfter)})`
      return new LlmError({
        message: `provider error ${status}: ${providerMessage(error.detail) ?? firstLine(error.detail)}${wait}`,
        retryable: retryableStatus(status),
        cause: error
      })
    }
    case "network":
      return new LlmError({ message: `connection to the model failed: ${firstLine(error.detail)}`, retryable: true, cause: error })
    case "provider":
      return new LlmError({ message: `provider error: ${firstLine(error.detail)}`, retryable: error.providerRetryable ?? true, cause: error })
    case "idle":
      return new LlmError({ message: `the model stalled: ${error.detail} (TAPE_PROVIDER_IDLE_MS)`, retryable: true, cause: error })
    case "too_large":
      return new LlmError({ message: `the reply is too large: ${error.detail} (TAPE_MAX_REPLY_BYTES)`, retryable: false, cause: error })
    default: {
      const _exhaustive: never = error.reason
      return _exhaustive
    }
  }
}

/** A BAML (or HTTP path) failure as an LlmError with a short, readable message. */
export const toLlmError = (cause: unknown): LlmError => {
  if (cause instanceof LlmError) return cause
  if (cause instanceof StreamRequestError) return fromStreamRequest(cause)
  const error = cause instanceof Error ? toBamlError(cause) : toBamlError(new Error(String(cause)))
  if (error instanceof BamlClientHttpError) {
    const status = error.status_code
    const body = error.raw_response ?? error.message.slice(error.message.indexOf("\n") + 1)
    const detail = providerMessage(body) ?? firstLine(error.message.replace(/^(?:\w+: )+/, ""))
    if (status >= 100) return new LlmError({ message: `provider error ${status}: ${detail}`, retryable: retryableStatus(status), cause: error })
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

/** One model choice, ready to call. */
interface Choice {
  readonly spec: ModelSpec
  readonly client: ClientSpec
  readonly registry: ReturnType<typeof makeRegistry>
  /** Undefined: only BAML's own runtime can call it. */
  readonly dialect: Dialect | undefined
  readonly policy: RetryPolicy
  /** The in-process endpoint (offline / scripted): it is told the turn and the model turn. */
  readonly local: boolean
}

/** What {@link makeLlmClient} needs besides the choices. */
export interface LlmClientOptions {
  /** Where the in-process endpoint listens (offline / scripted choices). */
  readonly offlineBaseUrl: string
  readonly limits: LlmLimits
  readonly http: HttpClient.HttpClient
  /** The operator's system prompt (the config file's `instructions`); the default one when absent. */
  readonly instructions?: string
}

/** Builds the service for `choices`: every call is a fresh request, aborted when its stream is interrupted. */
export const makeLlmClient = (choices: ModelChoices, options: LlmClientOptions): LlmClientService => {
  const { limits, http } = options
  const byName = new Map(
    choices.models.map((spec): [string, Choice] => {
      const client = clientSpec(spec, options.offlineBaseUrl)
      return [
        spec.name,
        {
          spec,
          client,
          registry: makeRegistry(client),
          dialect: dialectOf(client),
          policy: bamlRetryPolicy(client.retryPolicy),
          local: spec.provider === "offline" || spec.provider === "scripted"
        }
      ]
    })
  )
  const fallback = byName.get(choices.default)
  if (fallback === undefined) throw new Error(`the default model ${JSON.stringify(choices.default)} is not one of the choices`)

  const idleError = () =>
    new LlmError({ message: `the model stalled: nothing for ${Duration.format(limits.idleTimeout)} (TAPE_PROVIDER_IDLE_MS)`, retryable: true })
  const totalError = () =>
    new LlmError({ message: `the model call took longer than ${Duration.format(limits.totalTimeout)} (TAPE_PROVIDER_TIMEOUT_MS)`, retryable: true })

  /** The closing chunks of a reply from its final parse. */
  const closing = (
    input: LlmInput,
    reply: ReplyAssembler,
    final: baml.Reply,
    tools: ReadonlyMap<string, LlmTool>,
    usage: TokenUsage
  ): Effect.Effect<ReadonlyArray<LlmChunk>> => {
    const calls: unknown = final["toolCalls"]
    const parsed = Array.isArray(calls) ? calls.flatMap((c: unknown) => toToolCall(c, tools) ?? []) : []
    const { chunks, diverged } = reply.finish(typeof final.text === "string" ? final.text : "", parsed)
    const u = toUsage(usage)
    const done: LlmChunk = u === undefined ? { type: "done" } : { type: "done", usage: u }
    const out = Effect.succeed([...chunks, done])
    // The final parse is the truth: say so when the streamed text is not what it says.
    return diverged ? Effect.zipRight(Effect.logWarning(`turn ${input.turnId}: the streamed text diverged from the final reply`), out) : out
  }

  /** One provider call on our HTTP path, its pieces handed to `emit` by the reading fiber; its faults as LlmErrors. */
  const provider = <X, E = never>(
    request: PreparedRequest,
    dialect: Dialect,
    policy: RetryPolicy,
    emit: (pieces: ReadonlyArray<ProviderPiece>) => Effect.Effect<void, X>,
    deadline?: Deadline<E>
  ): Effect.Effect<void, LlmError | E | X> =>
    callProvider(request, dialect, policy, limits, emit, deadline).pipe(
      Effect.provideService(HttpClient.HttpClient, http),
      Effect.mapError((e) => (e instanceof StreamRequestError ? fromStreamRequest(e) : e))
    )

  const fromEither = <A>(e: Either.Either<A, LlmError>): Effect.Effect<A, LlmError> => Either.match(e, { onLeft: Effect.fail, onRight: Effect.succeed })

  /**
   * Our own HTTP path: BAML builds the request and parses; we send it and read every chunk. The chunks of each socket
   * read go to `sink` from the reading fiber (no queue, no Stream stage per chunk), the closing ones after the reply.
   */
  const viaHttp = <X>(
    choice: Choice,
    dialect: Dialect,
    input: LlmInput,
    call: Call,
    deadlineAt: number,
    sink: (chunks: ReadonlyArray<LlmChunk>) => Effect.Effect<void, X>
  ): Effect.Effect<void, LlmError | X> =>
    Effect.gen(function* () {
      const built = yield* Effect.tryPromise({
        try: () => b.streamRequest.Chat(call.instructions, call.messages, call.specs, { clientRegistry: choice.registry, tb: call.tb }),
        catch: toLlmError
      })
      const headers = choice.local ? { [TURN_HEADER]: input.turnId, [MODEL_TURN_HEADER]: String(input.modelTurn) } : {}
      const request = prepareRequest(built, dialect, headers)
      const reply = makeReplyAssembler({
        maxReplyBytes: limits.maxReplyBytes,
        parsePartial: (raw) => {
          try {
            const partial = stablePartial(raw, b.parseStream.Chat(raw, { tb: call.tb }))
            return typeof partial?.text === "string" ? partial.text : undefined
          } catch {
            // Nothing parseable yet (e.g. prose before the JSON): wait for more.
            return undefined
          }
        }
      })
      let usage: TokenUsage = {}
      const onPieces = (pieces: ReadonlyArray<ProviderPiece>): Effect.Effect<void, LlmError | X> => {
        const chunks: Array<LlmChunk> = []
        for (const piece of pieces) {
          switch (piece.type) {
            case "attempt":
              reply.attempt()
              usage = {}
              break
            case "usage":
              usage = { ...usage, ...piece.usage }
              break
            case "text": {
              const pushed = reply.push(piece.text)
              if (Either.isLeft(pushed)) return Effect.zipRight(chunks.length === 0 ? Effect.void : sink(chunks), Effect.fail(pushed.left))
              for (const c of pushed.right) chunks.push(c)
              break
            }
            default: {
              const _exhaustive: never = piece
              return _exhaustive
            }
          }
        }
        return chunks.length === 0 ? Effect.void : sink(chunks)
      }
      yield* provider(request, dialect, choice.policy, onPieces, { at: deadlineAt, error: totalError })
      const raw = reply.raw()
      const final = plainReply(raw) ?? (yield* Effect.try({ try: () => b.parse.Chat(raw, { tb: call.tb }), catch: toLlmError }))
      yield* sink(yield* closing(input, reply, final, call.tools, usage))
    })

  /** BAML's own stream (providers we do not read ourselves). */
  const viaBaml = (choice: Choice, input: LlmInput, call: Call): Stream.Stream<LlmChunk, LlmError> =>
    Stream.unwrapScoped(
      Effect.gen(function* () {
        const controller = yield* Effect.acquireRelease(Effect.sync(() => new AbortController()), (c, exit) =>
          Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => c.abort())
        )
        const stream = b.stream.Chat(call.instructions, call.messages, call.specs, { clientRegistry: choice.registry, tb: call.tb, signal: controller.signal })
        const reply = makeReplyAssembler({ maxReplyBytes: limits.maxReplyBytes, parsePartial: () => undefined })
        reply.attempt()
        const partials = Stream.fromAsyncIterable(stream, toLlmError).pipe(
          Stream.timeoutFail(idleError, limits.idleTimeout),
          Stream.mapConcatEffect((partial) => fromEither(reply.partial(typeof partial.text === "string" ? partial.text : "")))
        )
        const end = Stream.fromIterableEffect(
          Effect.tryPromise({ try: () => stream.getFinalResponse(), catch: toLlmError }).pipe(
            Effect.flatMap((final) => closing(input, reply, final, call.tools, {}))
          )
        )
        return Stream.concat(partials, end)
      })
    )

  const run = <X>(input: LlmInput, sink: (chunks: ReadonlyArray<LlmChunk>) => Effect.Effect<void, X>): Effect.Effect<void, LlmError | X> => {
    const name = input.model ?? choices.default
    const choice = byName.get(name)
    if (choice === undefined) {
      return Effect.fail(
        new LlmError({ message: `unknown model ${JSON.stringify(name)}; the models are: ${[...byName.keys()].join(", ")}`, retryable: false })
      )
    }
    // The total timeout counts from here. Our HTTP path enforces it in its reading fiber (one timer per call);
    // `Stream.interruptWhen` costs a fiber hand-off per chunk, so only BAML's own stream (no hot path here) uses it.
    const total = Effect.zipRight(Effect.sleep(limits.totalTimeout), Effect.fail(totalError()))
    return Effect.flatMap(Clock.currentTimeMillis, (startedAt) => {
      const call = promptOf(input.memory, input.tools, options.instructions ?? "")
      return choice.dialect === undefined
        ? Stream.runForEachChunk(Stream.interruptWhen(viaBaml(choice, input, call), total), (chunk) => sink(Chunk.toReadonlyArray(chunk)))
        : viaHttp(choice, choice.dialect, input, call, startedAt + Duration.toMillis(limits.totalTimeout), sink)
    }).pipe(
      Effect.withSpan("LlmClient.stream", {
        attributes: { turnId: input.turnId, provider: choice.spec.provider, model: choice.spec.model, modelTurn: input.modelTurn }
      })
    )
  }

  /** Chunks `stream` holds for its consumer: a slow consumer stops the reading, not the memory. */
  const BUFFER_CHUNKS = 64
  const stream = (input: LlmInput): Stream.Stream<LlmChunk, LlmError> =>
    Stream.unwrapScoped(
      Effect.gen(function* () {
        const mailbox = yield* Mailbox.make<LlmChunk, LlmError>(BUFFER_CHUNKS)
        yield* run(input, (chunks) => Effect.asVoid(mailbox.offerAll(chunks))).pipe(Mailbox.into(mailbox), Effect.forkScoped)
        return Mailbox.toStream(mailbox)
      })
    )

  /** The named choice, or the default for a name this server has none for (another server's config, an import). */
  const choiceOr = (name: string | undefined): Choice => (name === undefined ? undefined : byName.get(name)) ?? fallback

  const render = (input: Pick<LlmInput, "memory" | "tools" | "model">): Effect.Effect<RenderedRequest, LlmError> =>
    Effect.gen(function* () {
      const choice = choiceOr(input.model)
      const call = promptOf(input.memory, input.tools, options.instructions ?? "")
      const request = yield* Effect.tryPromise({
        try: () => b.request.Chat(call.instructions, call.messages, call.specs, { clientRegistry: choice.registry, tb: call.tb }),
        catch: toLlmError
      })
      const body = yield* Effect.try({ try: (): unknown => request.body.json(), catch: toLlmError })
      return { model: choice.spec.name, provider: choice.spec.provider, url: request.url, body }
    })
  const summarize = (input: SummaryInput): Effect.Effect<string, LlmError> =>
    Effect.gen(function* () {
      const choice = choiceOr(input.model)
      const messages = toChatMessages(input.memory)
      const dialect = choice.dialect
      if (dialect === undefined) {
        return yield* Effect.tryPromise({ try: (signal) => b.Summarize(messages, { clientRegistry: choice.registry, signal }), catch: toLlmError })
      }
      const built = yield* Effect.tryPromise({ try: () => b.streamRequest.Summarize(messages, { clientRegistry: choice.registry }), catch: toLlmError })
      const headers = choice.local
        ? { [TASK_HEADER]: "summary", [TURN_HEADER]: `summary:${input.session}:${input.upToSeq}`, [MODEL_TURN_HEADER]: String(input.entry) }
        : {}
      let raw = ""
      let bytes = 0
      const onPieces = (pieces: ReadonlyArray<ProviderPiece>): Effect.Effect<void, LlmError> => {
        for (const piece of pieces) {
          switch (piece.type) {
            case "attempt":
              raw = ""
              bytes = 0
              break
            case "usage":
              break
            case "text":
              bytes += Buffer.byteLength(piece.text, "utf8")
              if (bytes > limits.maxReplyBytes) return Effect.fail(new LlmError({ message: `the summary is larger than ${limits.maxReplyBytes} bytes (TAPE_MAX_REPLY_BYTES)`, retryable: false }))
              raw += piece.text
              break
            default: {
              const _exhaustive: never = piece
              return _exhaustive
            }
          }
        }
        return Effect.void
      }
      yield* provider(prepareRequest(built, dialect, headers), dialect, choice.policy, onPieces)
      return yield* Effect.try({ try: () => b.parse.Summarize(raw), catch: toLlmError })
    }).pipe(
      Effect.timeoutFail({ duration: limits.totalTimeout, onTimeout: totalError }),
      Effect.withSpan("LlmClient.summarize", { attributes: { session: input.session, upToSeq: input.upToSeq } })
    )

  return { kind: fallback.spec.provider, model: fallback.spec.name, models: modelInfos(choices), stream, run, render, summarize }
}

/** What one call hands BAML. */
/** The BAML `Chat` function's inputs for one call: the messages, the tool list and the tools' call classes. */
export interface Call {
  /** The operator's system prompt text ("" for the default one). */
  readonly instructions: string
  readonly messages: Array<baml.ChatMessage>
  readonly specs: Array<baml.ToolSpec>
  readonly tb: ReturnType<typeof toolTypes>
  readonly tools: ReadonlyMap<string, LlmTool>
}

/** The one way memory and tools become a prompt's inputs (every untrusted text neutralised on the way). */
export const promptOf = (memory: LlmMemory, offered: ReadonlyArray<LlmTool>, instructions = ""): Call => {
  const tools = toolsForModel(offered)
  return {
    instructions,
    messages: toChatMessages(memory),
    specs: tools.map((t) => ({ name: t.name, description: t.description })),
    tb: toolTypesFor(tools),
    tools: new Map(tools.map((t) => [t.name, t]))
  }
}

// BAML logs every prompt at info level; keep it to warnings unless BAML_LOG asks otherwise.
const quietBaml = Config.option(Config.string("BAML_LOG")).pipe(
  Effect.flatMap((level) =>
    Effect.sync(() => {
      if (Option.isNone(level) && getLogLevel().toLowerCase() !== "warn") setLogLevel("warn")
    })
  ),
  // A BAML_LOG that cannot be read leaves BAML's own level.
  Effect.ignore
)

/** What {@link LlmClient.layerWith} is built from. */
export interface LlmClientConfig {
  readonly choices: ModelChoices
  /** The script the `scripted` choice plays. */
  readonly script?: Script
  readonly limits?: LlmLimits
  /** Pacing of the offline model. */
  readonly offline?: Omit<OfflineOptions, "script">
  /** The operator's system prompt (the config file's `instructions`). */
  readonly instructions?: string
}

/** The model service (`"tape/LlmClient"`). Every layer also starts the in-process endpoint (`OfflineEndpoint`). */
export class LlmClient extends Context.Tag("tape/LlmClient")<LlmClient, LlmClientService>() {
  /** The choices, the script and the limits given; the HTTP client is fetch's. */
  static layerWith(config: LlmClientConfig): Layer.Layer<LlmClient | OfflineEndpoint> {
    const endpoint = Layer.scoped(OfflineEndpoint, serveOffline({ ...config.offline, ...(config.script === undefined ? {} : { script: config.script }) }))
    const client = Layer.effect(
      LlmClient,
      Effect.gen(function* () {
        yield* quietBaml
        const local: OfflineEndpointService = yield* OfflineEndpoint
        const http = yield* HttpClient.HttpClient
        return makeLlmClient(config.choices, {
          offlineBaseUrl: local.baseUrl,
          limits: config.limits ?? DEFAULT_LIMITS,
          http,
          ...(config.instructions === undefined ? {} : { instructions: config.instructions })
        })
      })
    ).pipe(Layer.provide(FetchHttpClient.layer))
    return Layer.provideMerge(client, endpoint)
  }

  /**
   * From the environment, read with Config: the model choices (see `envModelsConfig`), LLM_SCRIPT, and the limits
   * (`llmLimitsConfig`). A bad value is a ConfigError naming the variable; an unreadable script a ScriptError.
   */
  static readonly layer: Layer.Layer<LlmClient | OfflineEndpoint, ConfigError.ConfigError | ScriptError> = LlmClient.layerFrom()

  /**
   * Like `layer`, with the config file's model choices (when it has any, they are the choices; LLM_SCRIPT still wins,
   * so tests and demos never reach a real provider by accident) and its instructions.
   */
  static layerFrom(options: { readonly models?: ModelChoices; readonly instructions?: string } = {}): Layer.Layer<LlmClient | OfflineEndpoint, ConfigError.ConfigError | ScriptError> {
    return Layer.unwrapEffect(
      Effect.gen(function* () {
        const env = yield* envModelsConfig
        const limits = yield* llmLimitsConfig
        const played = Option.isSome(env.script) ? yield* loadScript(env.script.value) : undefined
        const choices = played === undefined && options.models !== undefined ? options.models : env.choices
        return LlmClient.layerWith({
          choices,
          limits,
          ...(played === undefined ? {} : { script: played }),
          ...(options.instructions === undefined ? {} : { instructions: options.instructions })
        })
      })
    )
  }

  /** A scripted model (a script or the path of a script file) as the only choice. */
  static layerScripted(script: Script | string, limits?: LlmLimits): Layer.Layer<LlmClient | OfflineEndpoint, ScriptError> {
    return Layer.unwrapEffect(
      Effect.map(typeof script === "string" ? loadScript(script) : Effect.succeed(script), (s) =>
        LlmClient.layerWith({ choices: localChoices("scripted"), script: s, ...(limits === undefined ? {} : { limits }) })
      )
    )
  }

  /** The offline model as the only choice. */
  static layerOffline(options: Omit<OfflineOptions, "script"> = {}): Layer.Layer<LlmClient | OfflineEndpoint> {
    return LlmClient.layerWith({ choices: localChoices("offline"), offline: options })
  }
}

export { OfflineEndpoint, ScriptError }
export type { ModelChoices, ModelInfo, ModelSpec, ProviderKind } from "./provider.ts"
