/**
 * The built-in model: an OpenAI-compatible `POST /v1/chat/completions` (SSE) served in-process by Bun, which the
 * LLM client calls over real HTTP. Plays the offline model or a script (DESIGN.md §6). Holds no session state: the
 * script entry a request plays is the one its `x-tape-model-turn` header names (a count from the session's tape).
 */
import { Context, Data, Effect, Schema, type Scope } from "effect"
import { JsonObject } from "../domain/Event.ts"
import { tokensOf } from "../domain/tokens.ts"

/** The per-turn header the LLM client sends; retries of a turn carry the same value. */
export const TURN_HEADER = "x-tape-turn"

/**
 * The header naming the script entry to play: the number of earlier model turns of the session (retries excluded),
 * so a restarted process, or another server of a cluster, plays the same entry for the same turn.
 */
export const MODEL_TURN_HEADER = "x-tape-model-turn"

/** The header that marks a compaction's Summarize call (value `summary`); its MODEL_TURN_HEADER is the compaction's number. */
export const TASK_HEADER = "x-tape-task"

/** Resolves after `ms`, or at once when `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve()
    const onAbort = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve()
    }, ms)
    signal.addEventListener("abort", onAbort, { once: true })
  })

/** One tool call of a scripted turn. */
export const ScriptToolCall = Schema.Struct({
  /** Tool name, e.g. `eval`. */
  tool: Schema.String,
  /** Its arguments, e.g. `{ "code": "1+1" }`. */
  args: JsonObject,
  /** Why the model calls it. */
  description: Schema.optional(Schema.String)
})
export type ScriptToolCall = typeof ScriptToolCall.Type

/** One scripted model turn; every attempt (retry) of that turn replays it. */
export const ScriptTurn = Schema.Struct({
  /** The reply text. */
  text: Schema.optional(Schema.String),
  /** Tool calls proposed after the text. */
  toolCalls: Schema.optional(Schema.Array(ScriptToolCall)),
  /** Characters of the raw reply per SSE chunk (default 4). */
  chunkChars: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** Pause before each chunk, in ms (default 5). */
  delayMs: Schema.optional(Schema.NonNegative),
  /** Fail every attempt of this turn with this message. */
  fail: Schema.optional(Schema.String),
  /** How `fail` fails: HTTP 500 (default) or a connection dropped mid-stream. */
  failMode: Schema.optional(Schema.Literal("500", "drop"))
})
export type ScriptTurn = typeof ScriptTurn.Type

/** One scripted summary (a compaction's Summarize call); every attempt of it replays it. */
export const ScriptSummary = Schema.Struct({
  /** The summary text. */
  text: Schema.optional(Schema.String),
  /** Fail every attempt with this message (the writer then trims: MemoryTrimmed). */
  fail: Schema.optional(Schema.String),
  /** Pause before each chunk, in ms (default 5). */
  delayMs: Schema.optional(Schema.NonNegative)
})
export type ScriptSummary = typeof ScriptSummary.Type

/**
 * A scripted model: entry n of `turns` is played for a session's model turn n (its earlier model turns counted on its
 * tape); entry n of `summaries` for its compaction n (absent: the offline model's summary of the turns' first lines).
 */
export const Script = Schema.Struct({ turns: Schema.Array(ScriptTurn), summaries: Schema.optional(Schema.Array(ScriptSummary)) })
export type Script = typeof Script.Type

/** The script file could not be read or does not match {@link Script}. */
export class ScriptError extends Data.TaggedError("ScriptError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Reads and validates a script file (`LLM_SCRIPT`). */
export const loadScript = Effect.fn("offline.loadScript")(function* (path: string) {
  const text = yield* Effect.tryPromise({
    try: () => Bun.file(path).text(),
    catch: (cause) => new ScriptError({ message: `cannot read script ${path}`, cause })
  })
  const json = yield* Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: (cause) => new ScriptError({ message: `script ${path} is not JSON`, cause })
  })
  return yield* Schema.decodeUnknown(Script)(json).pipe(
    Effect.mapError((cause) => new ScriptError({ message: `script ${path} is invalid: ${cause.message}`, cause }))
  )
})

/** What the endpoint saw; `at` is `performance.now()`. */
export type EndpointEvent =
  | {
      readonly type: "request"
      readonly requestId: number
      /** The `x-tape-turn` header, or a digest of the prompt when absent. */
      readonly turnKey: string
      /** 1 for the first attempt of a turn, 2.. for the client's retries. */
      readonly attempt: number
      /** Index of the script entry played (undefined for the offline model, a missing header or an exhausted script). */
      readonly entry: number | undefined
      /** `turn` for a Chat call, `summary` for a compaction's Summarize call. */
      readonly task: "turn" | "summary"
      /** What the endpoint received: the body's size in bytes, and its messages' tokens (o200k_base, as usage reports). */
      readonly bodyBytes: number
      readonly promptTokens: number
      readonly at: number
    }
  | {
      readonly type: "closed"
      readonly requestId: number
      readonly turnKey: string
      /** completed: all sent; aborted: the client went away; failed: HTTP error; dropped: we cut it. */
      readonly outcome: "completed" | "aborted" | "failed" | "dropped"
      /** Content chunks written before the close, and how many the reply had. */
      readonly chunksSent: number
      readonly chunksTotal: number
      readonly at: number
    }

/** The running endpoint. */
export interface OfflineEndpointService {
  /** Base URL for an openai-generic client, e.g. `http://127.0.0.1:41234/v1`. */
  readonly baseUrl: string
  readonly mode: "offline" | "scripted"
  /** Everything seen so far, in order. */
  readonly events: () => ReadonlyArray<EndpointEvent>
  /** The first event (past or future) matching `predicate`. */
  readonly waitFor: <E extends EndpointEvent>(predicate: (event: EndpointEvent) => event is E) => Effect.Effect<E>
}

/** The endpoint as a service, for layers that start one (tests read its events). */
export class OfflineEndpoint extends Context.Tag("tape/OfflineEndpoint")<OfflineEndpoint, OfflineEndpointService>() {}

/** Options of {@link serveOffline}. */
export interface OfflineOptions {
  /** Play this script instead of the offline model. */
  readonly script?: Script
  /** Offline model pacing (default 8 chars every 12 ms, so the UI visibly streams). */
  readonly chunkChars?: number
  readonly delayMs?: number
}

/** A tool call as the Reply JSON carries it. */
interface ReplyToolCall {
  readonly tool: string
  readonly args: JsonObject
  readonly description?: string | undefined
}

interface Plan {
  /** The raw reply as it is sent, when it is not a Reply (a summary is plain text). */
  readonly raw?: string
  readonly text: string
  readonly toolCalls: ReadonlyArray<ReplyToolCall>
  readonly chunkChars: number
  readonly delayMs: number
  readonly fail?: { readonly message: string; readonly mode: "500" | "drop" }
}

/** Longest line kept of each message in the offline model's summary, and how many messages it names at most. */
const SUMMARY_LINE_CHARS = 100
const SUMMARY_LINES = 20

/**
 * The offline model's summary of a Summarize prompt: the first line of each message (`[user] …`, `[assistant] …`, an
 * earlier summary's own lines), cut, the newest SUMMARY_LINES of them. Deterministic: a function of the prompt only.
 */
export const offlineSummary = (prompt: string): string => {
  const lines = prompt
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^\[(user|assistant|summary)\] \S/.test(l) || /^- (user|assistant): /.test(l))
    .map((l) => l.replace(/^\[(user|assistant|summary)\] /, "$1: ").replace(/^- /, ""))
    .filter((l) => !/^(user|summary): \[Summary of /.test(l))
    .map((l) => (l.length > SUMMARY_LINE_CHARS ? `${l.slice(0, SUMMARY_LINE_CHARS)}…` : l))
  const kept = lines.slice(-SUMMARY_LINES)
  return kept.length === 0 ? "" : `Earlier in this conversation:\n${kept.map((l) => `- ${l}`).join("\n")}`
}

/** The raw model output the BAML `Reply` parser expects: every call as `{ tool, args, description? }`. */
export const renderReply = (text: string, toolCalls: ReadonlyArray<ReplyToolCall>): string =>
  JSON.stringify({
    text,
    toolCalls: toolCalls.map((c) => ({ tool: c.tool, args: c.args, ...(c.description === undefined ? {} : { description: c.description }) }))
  })

/** Splits `s` into pieces of `n` code points (never inside a surrogate pair). */
const chunksOf = (s: string, n: number): ReadonlyArray<string> => {
  const chars = Array.from(s)
  const out: Array<string> = []
  for (let i = 0; i < chars.length; i += n) out.push(chars.slice(i, i + n).join(""))
  return out
}

// ---------------------------------------------------------------------------------------------
// The offline model: deterministic, a function of the prompt only.

/** Text of an OpenAI chat message content (a string or a list of parts). */
const contentText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content
      .map((part: unknown) =>
        typeof part === "object" && part !== null && "text" in part && typeof part.text === "string" ? part.text : ""
      )
      .join("")
  }
  return ""
}

const HELP =
  "I'm the offline model built into Agent Tape: no language model provider is configured, so I can only do simple things. " +
  "I can evaluate arithmetic (try `2+3*4`) or run JavaScript (try `run [1, 2, 3].map(x => x * 2)`) with the eval tool, " +
  "and call any tool you name with its arguments as JSON (try `call list_files {}`, or one of your own tools). " +
  "To talk to a real model, set ANTHROPIC_API_KEY (Anthropic), OPENAI_API_KEY (OpenAI), AWS credentials " +
  "(AWS_ACCESS_KEY_ID or AWS_PROFILE, for Bedrock) or LLM_BASE_URL with LLM_MODEL (any OpenAI-compatible server " +
  "such as Ollama, vLLM or llama.cpp), then restart the server."

/** `2+3*4`, `what is 17 * 23?` → the expression as JavaScript; anything else → undefined. */
export const arithmeticOf = (text: string): string | undefined => {
  const expr = text
    .trim()
    // A follow-up reads "and 3*3?", "now what is 2^10".
    .replace(/^(?:and|also|then|now|so)\s+/i, "")
    .replace(/^(what(?:'s| is)|calculate|compute|evaluate)\s+/i, "")
    .replace(/[\s?!=.]+$/, "")
    .trim()
  if (!/^[\d\s.+\-*/%()^]+$/.test(expr) || !/\d/.test(expr) || !/\d\s*[+\-*/%^]|[+\-*/%^]\s*[\d(]/.test(expr)) return undefined
  return expr.replace(/\^/g, "**")
}

/** `run <js>`, `eval <js>`, `evaluate <js>` → the code (fences and backticks stripped). */
export const codeOf = (text: string): string | undefined => {
  const m = /^\s*(?:run|eval|evaluate)\s*:?\s+([\s\S]+)$/i.exec(text)
  const raw = m?.[1]?.trim()
  if (raw === undefined) return undefined
  const fenced = /^```[a-z]*\n?([\s\S]*?)\n?```$/i.exec(raw)
  const code = (fenced?.[1] ?? raw.replace(/^`+|`+$/g, "")).trim()
  return code.length > 0 ? code : undefined
}

const RESULT_BLOCK = /<tool_result id="[^"]*" tool="([^"]*)">\n?([\s\S]*?)\n?<\/tool_result>/g

/** What the offline model answers to this conversation (OpenAI messages as BAML sent them). */
export const offlineReply = (messages: ReadonlyArray<unknown>): { text: string; toolCalls: ReadonlyArray<ReplyToolCall> } => {
  const last = messages.at(-1)
  const role = typeof last === "object" && last !== null && "role" in last ? last.role : undefined
  const text = typeof last === "object" && last !== null && "content" in last ? contentText(last.content).trim() : ""
  if (role !== "user") return { text: HELP, toolCalls: [] }
  if (!text.startsWith("Tool results:")) return answerTo(text)
  const results = Array.from(text.matchAll(RESULT_BLOCK), (m) => ({ tool: m[1] ?? "tool", output: (m[2] ?? "").trim() }))
  const said = results.map((r) => resultSentence(r.tool, r.output))
  // A message queued while the tools ran enters with their results: after the last result block, it is answered too.
  const end = text.lastIndexOf("</tool_result>")
  const followUp = end < 0 ? "" : text.slice(end + "</tool_result>".length).trim()
  const summary = said.length === 1 ? (said[0] ?? "") : `The tools returned:\n${said.map((line) => `- ${line}`).join("\n")}`
  if (followUp === "") return { text: summary, toolCalls: [] }
  const next = answerTo(followUp)
  return { text: `${summary}\n\nAs for your next message: ${next.text}`, toolCalls: next.toolCalls }
}

const isJsonObject = Schema.is(JsonObject)

/** `call <tool> {json}` / `use <tool> {json}` → that call (the args an object; absent: {}); anything else → undefined. */
export const namedCallOf = (text: string): ReplyToolCall | undefined => {
  const m = /^\s*(?:call|use)\s+([A-Za-z][A-Za-z0-9_.:-]{0,127})\s*([\s\S]*)$/i.exec(text)
  if (m === null) return undefined
  const rest = (m[2] ?? "").trim()
  if (rest === "") return { tool: m[1] ?? "", args: {}, description: "The tool you asked me to call" }
  try {
    const args: unknown = JSON.parse(rest)
    return isJsonObject(args) ? { tool: m[1] ?? "", args, description: "The tool you asked me to call" } : undefined
  } catch {
    return undefined
  }
}

/** The offline model's answer to a user's own text: arithmetic or code becomes an eval call, `call <tool> {…}` that call; anything else, the help. */
const answerTo = (text: string): { text: string; toolCalls: ReadonlyArray<ReplyToolCall> } => {
  const named = namedCallOf(text)
  if (named !== undefined) return { text: `I'll call ${named.tool} as you asked.`, toolCalls: [named] }
  const expr = arithmeticOf(text)
  if (expr !== undefined) {
    return {
      text: "That looks like arithmetic, so I'll evaluate it with the eval tool.",
      toolCalls: [{ tool: "eval", args: { code: expr }, description: "Evaluate the arithmetic expression" }]
    }
  }
  const code = codeOf(text)
  if (code !== undefined) {
    return {
      text: "I'll run that with the eval tool.",
      toolCalls: [{ tool: "eval", args: { code }, description: "Run the JavaScript you gave me" }]
    }
  }
  return { text: HELP, toolCalls: [] }
}

/** The runtime's note before an output whose args a user edited (src/domain/projections/memory.ts). */
const EDITED_NOTE = /^\[The user edited the arguments before approving; it ran with [^\n]*\]\n?/

/** One tool result in a sentence: what ran and what came of it, or why it did not run. */
const resultSentence = (tool: string, raw: string): string => {
  const edited = EDITED_NOTE.test(raw)
  const output = raw.replace(EDITED_NOTE, "").trim()
  const how = edited ? " (with the arguments you edited)" : ""
  const rejected = /^\[Rejected(?: by the user)?: ([\s\S]*)\]$/.exec(output)
  if (rejected) return `You rejected the ${tool} call (${rejected[1]}), so I did not run it. Tell me what to do instead.`
  const cancelled = /^\[Cancelled \(([^)]*)\): ([\s\S]*)\]$/.exec(output)
  if (cancelled) return `The ${tool} call was stopped (${cancelled[1]}): ${cancelled[2]}.`
  const invalid = /^\[Invalid tool call, not run: ([\s\S]*)\]$/.exec(output)
  if (invalid) return `My ${tool} call was not valid, so it did not run: ${invalid[1]}`
  if (output.startsWith("Error: ")) return `The ${tool} call${how} failed: ${output.slice("Error: ".length)}`
  if (tool !== "eval") return `The ${tool} tool${how} returned: ${output}`
  // eval prints console lines, then "=> <value>": answer with the value, and mention any printed lines.
  const value = /(?:^|\n)=> ([\s\S]*)$/.exec(output)
  const printed = value ? output.slice(0, value.index).trim() : ""
  return value ? `The result${how} is ${value[1]}.${printed ? `\n\nIt printed:\n${printed}` : ""}` : `The result${how} is ${output}.`
}

// ---------------------------------------------------------------------------------------------
// The script player: the entry is the one the request names; attempts are counted per turn key, for the log only.

/** Turn keys whose attempts are remembered (the oldest is forgotten first): the log needs only recent turns. */
const ATTEMPT_KEYS = 1024

const makeAttempts = () => {
  const counts = new Map<string, number>()
  return (key: string): number => {
    const n = (counts.get(key) ?? 0) + 1
    counts.delete(key)
    counts.set(key, n)
    if (counts.size > ATTEMPT_KEYS) {
      const oldest = counts.keys().next()
      if (oldest.done !== true) counts.delete(oldest.value)
    }
    return n
  }
}

/** The entry index a `x-tape-model-turn` value names, or undefined when it is not a plain non-negative integer. */
export const modelTurnOf = (value: string | null): number | undefined => {
  if (value === null || !/^(?:0|[1-9][0-9]{0,8})$/.test(value)) return undefined
  return Number(value)
}

// ---------------------------------------------------------------------------------------------
// HTTP

const json = (status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } })

const errorResponse = (status: number, message: string): Response =>
  json(status, { error: { message, type: status >= 500 ? "server_error" : "invalid_request_error" } })

/**
 * Starts the endpoint on 127.0.0.1 (port 0) for the life of the scope. With `script`, a request plays the entry its
 * `x-tape-model-turn` header names (retries of a call carry the same value, so they replay the same entry).
 */
export const serveOffline = (options: OfflineOptions = {}): Effect.Effect<OfflineEndpointService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const log: Array<EndpointEvent> = []
    const waiters = new Set<(event: EndpointEvent) => void>()
    const record = (event: EndpointEvent) => {
      log.push(event)
      for (const w of [...waiters]) w(event)
    }
    const { script } = options
    const attempts = makeAttempts()
    let requestIds = 0

    /** The plan for a request, or why there is none (an HTTP 4xx/5xx with that message). */
    const planOf = (
      messages: ReadonlyArray<unknown>,
      modelTurn: string | null,
      task: "turn" | "summary"
    ): { plan: Plan; entry: number | undefined } | { status: number; error: string } => {
      if (task === "summary") {
        const entry = modelTurnOf(modelTurn)
        const scripted = entry === undefined ? undefined : script?.summaries?.[entry]
        const text = scripted?.text ?? offlineSummary(messages.map((m: unknown) => (typeof m === "object" && m !== null && "content" in m ? contentText(m.content) : "")).join("\n"))
        const plan: Plan = {
          raw: text,
          text,
          toolCalls: [],
          chunkChars: 64,
          delayMs: scripted?.delayMs ?? (script === undefined ? 0 : 5),
          ...(scripted?.fail === undefined ? {} : { fail: { message: scripted.fail, mode: "500" as const } })
        }
        return { plan, entry: scripted === undefined ? undefined : entry }
      }
      if (script === undefined) {
        const reply = offlineReply(messages)
        return { plan: { ...reply, chunkChars: options.chunkChars ?? 8, delayMs: options.delayMs ?? 12 }, entry: undefined }
      }
      const entry = modelTurnOf(modelTurn)
      if (entry === undefined) return { status: 400, error: `expected a ${MODEL_TURN_HEADER} header with the session's model turn` }
      const t = script.turns[entry]
      if (t === undefined) return { status: 500, error: `script exhausted: entry ${entry} asked for, the script has ${script.turns.length}` }
      const plan: Plan = {
        text: t.text ?? "",
        toolCalls: t.toolCalls ?? [],
        chunkChars: t.chunkChars ?? 4,
        delayMs: t.delayMs ?? 5,
        ...(t.fail === undefined ? {} : { fail: { message: t.fail, mode: t.failMode ?? "500" } })
      }
      return { plan, entry }
    }

    const handle = async (req: Request): Promise<Response> => {
      const url = new URL(req.url)
      if (req.method !== "POST" || !url.pathname.endsWith("/chat/completions")) return errorResponse(404, "not found")
      const body: unknown = await req.json().catch(() => undefined)
      const messages = typeof body === "object" && body !== null && "messages" in body && Array.isArray(body.messages) ? body.messages : undefined
      if (messages === undefined) return errorResponse(400, "expected a JSON body with messages")
      const streaming = typeof body === "object" && body !== null && "stream" in body && body.stream === true
      const model = options.script === undefined ? "offline" : "scripted"
      const turnKey = req.headers.get(TURN_HEADER) ?? `prompt:${Bun.hash(JSON.stringify(messages)).toString(16)}`
      const requestId = ++requestIds
      const task = req.headers.get(TASK_HEADER) === "summary" ? "summary" : "turn"
      const chosen = planOf(messages, req.headers.get(MODEL_TURN_HEADER), task)
      const entry = "plan" in chosen ? chosen.entry : undefined
      const prompt = messages.map((m: unknown) => (typeof m === "object" && m !== null && "content" in m ? contentText(m.content) : "")).join("\n")
      const bodyBytes = Buffer.byteLength(JSON.stringify(body), "utf8")
      record({ type: "request", requestId, turnKey, attempt: attempts(turnKey), entry, task, bodyBytes, promptTokens: tokensOf(prompt), at: performance.now() })
      const closed = (outcome: "completed" | "aborted" | "failed" | "dropped", chunksSent: number, chunksTotal: number) =>
        record({ type: "closed", requestId, turnKey, outcome, chunksSent, chunksTotal, at: performance.now() })

      if (!("plan" in chosen)) {
        closed("failed", 0, 0)
        return errorResponse(chosen.status, chosen.error)
      }
      const { plan } = chosen
      if (plan.fail?.mode === "500") {
        closed("failed", 0, 0)
        return errorResponse(500, plan.fail.message)
      }
      const raw = plan.raw ?? renderReply(plan.text, plan.toolCalls)
      // Usage as a real provider reports it: the prompt's tokens by a real tokenizer (o200k_base), the reply's too.
      const inputTokens = tokensOf(prompt)
      const usage = { prompt_tokens: inputTokens, completion_tokens: tokensOf(raw), total_tokens: inputTokens + tokensOf(raw) }
      const id = `chatcmpl-${requestId}`

      if (!streaming) {
        if (plan.fail !== undefined) {
          closed("failed", 0, 0)
          return errorResponse(500, plan.fail.message)
        }
        closed("completed", 1, 1)
        return json(200, {
          id,
          object: "chat.completion",
          created: 0,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: raw }, finish_reason: "stop" }],
          usage
        })
      }

      const pieces = chunksOf(raw, plan.chunkChars)
      // A dropped stream still sends part of the reply first, so the client has begun parsing.
      const dropAt = plan.fail?.mode === "drop" ? Math.max(1, Math.floor(pieces.length / 2)) : undefined
      const encoder = new TextEncoder()
      const sse = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`)
      const chunk = (delta: object, finish: string | null) => sse({ id, object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, finish_reason: finish }] })
      let sent = 0
      let done = false
      const finish = (outcome: "completed" | "aborted" | "dropped") => {
        if (done) return
        done = true
        closed(outcome, sent, pieces.length)
      }
      req.signal.addEventListener("abort", () => finish("aborted"), { once: true })

      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(chunk({ role: "assistant", content: "" }, null))
        },
        async pull(controller) {
          if (done) return
          if (dropAt !== undefined && sent >= dropAt) {
            finish("dropped")
            // Erroring the body resets the connection; `undefined` keeps Bun from printing it as a crash.
            controller.error(undefined)
            return
          }
          const piece = pieces[sent]
          if (piece === undefined) {
            controller.enqueue(chunk({}, "stop"))
            controller.enqueue(sse({ id, object: "chat.completion.chunk", created: 0, model, choices: [], usage }))
            controller.enqueue(encoder.encode("data: [DONE]\n\n"))
            finish("completed")
            controller.close()
            return
          }
          await sleep(plan.delayMs, req.signal)
          if (done) return
          controller.enqueue(chunk({ content: piece }, null))
          sent += 1
        },
        cancel() {
          finish("aborted")
        }
      })
      return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } })
    }

    const server = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Bun.serve({
          hostname: "127.0.0.1",
          port: 0,
          idleTimeout: 0,
          fetch: handle
        })
      ),
      (s) => Effect.promise(() => s.stop(true))
    )
    yield* Effect.logDebug(`offline model listening on ${server.url.href}`)

    const waitFor = <E extends EndpointEvent>(predicate: (event: EndpointEvent) => event is E): Effect.Effect<E> =>
      Effect.async<E>((resume) => {
        const seen = log.find(predicate)
        if (seen !== undefined) return resume(Effect.succeed(seen))
        const waiter = (event: EndpointEvent) => {
          if (!predicate(event)) return
          waiters.delete(waiter)
          resume(Effect.succeed(event))
        }
        waiters.add(waiter)
        return Effect.sync(() => waiters.delete(waiter))
      })

    return {
      baseUrl: `http://127.0.0.1:${server.port}/v1`,
      mode: options.script === undefined ? "offline" : "scripted",
      events: () => [...log],
      waitFor
    } satisfies OfflineEndpointService
  })
