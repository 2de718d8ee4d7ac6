/**
 * The fast path of a model call: sends the request BAML built (prompt and provider body) with `fetch`, reads the
 * SSE stream itself and retries like the BAML retry_policy. Knows HTTP and SSE; not the Reply schema, not sessions.
 */
import { Data } from "effect"
import type { ClientSpec } from "./provider.ts"
import { anthropicPieces, makeSseDecoder, openAiPieces, type SseEvent, type StreamPiece, type TokenUsage } from "./sse.ts"

/** The stream formats read here. */
export type Dialect = "openai" | "anthropic"

/** The stream format of a BAML client, or undefined when only BAML's own runtime can call it (e.g. Bedrock). */
export const dialectOf = (client: ClientSpec): Dialect | undefined => {
  switch (client.provider) {
    case "openai":
    case "openai-generic":
      return "openai"
    case "anthropic":
      return "anthropic"
    default:
      return undefined
  }
}

/** An exponential-backoff retry policy. */
export interface RetryPolicy {
  readonly maxRetries: number
  readonly delayMs: number
  readonly multiplier: number
  readonly maxDelayMs: number
}

/** The `retry_policy` blocks of baml_src/chat.baml, which BAML's runtime applies on the other path: keep them in step. */
export const RETRY_POLICIES: Readonly<Record<ClientSpec["retryPolicy"], RetryPolicy>> = {
  TapeRetry: { maxRetries: 2, delayMs: 300, multiplier: 2, maxDelayMs: 5000 },
  OfflineRetry: { maxRetries: 2, delayMs: 10, multiplier: 2, maxDelayMs: 100 }
}

/** The pause before retry number `retry` (0 for the first retry). */
export const retryDelay = (policy: RetryPolicy, retry: number): number =>
  Math.min(policy.delayMs * policy.multiplier ** retry, policy.maxDelayMs)

/** A request as BAML's `b.streamRequest` builds it (its HTTPRequest, structurally). */
export interface BuiltRequest {
  readonly url: string
  readonly method: string
  readonly headers: object
  readonly body: { text(): string }
}

/** A request ready for `fetch`. */
export interface PreparedRequest {
  readonly url: string
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** The body as BAML built it, when `body` adds `stream_options` (sent instead if the server refuses them). */
  readonly plainBody?: string
}

/**
 * BAML's request, minus its internal `baml-*` headers; an OpenAI-style streaming body also asks for the
 * final usage chunk (`stream_options.include_usage`) unless it already says something about it.
 */
export const prepareRequest = (built: BuiltRequest, dialect: Dialect): PreparedRequest => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(built.headers)) {
    if (typeof value === "string" && !name.toLowerCase().startsWith("baml-")) headers[name] = value
  }
  const body = built.body.text()
  const base = { url: built.url, method: built.method, headers, body }
  if (dialect !== "openai") return base
  try {
    const json: unknown = JSON.parse(body)
    if (typeof json !== "object" || json === null || Array.isArray(json)) return base
    if (!("stream" in json) || json.stream !== true || "stream_options" in json) return base
    return { ...base, body: JSON.stringify({ ...json, stream_options: { include_usage: true } }), plainBody: body }
  } catch {
    return base
  }
}

/** One attempt failed (the caller turns it into an LlmError). */
export class StreamRequestError extends Data.TaggedError("StreamRequestError")<{
  /** status: an HTTP error response; network: no response, or the stream broke off; provider: an error event in the stream. */
  readonly reason: "status" | "network" | "provider"
  /** The HTTP status (reason `status`). */
  readonly status?: number
  /** The response body (status), what failed (network), the provider's message (provider). */
  readonly detail: string
  readonly cause?: unknown
}> {}

/** Whether a provider's HTTP status says another attempt may succeed: 5xx, 429 (rate limit), 408 (timeout). */
export const retryableStatus = (status: number): boolean => status >= 500 || status === 429 || status === 408

/** Whether another attempt may succeed: a retryable status, no connection, a stream cut or failed midway. */
export const isRetryable = (error: StreamRequestError): boolean =>
  error.reason !== "status" || error.status === undefined || retryableStatus(error.status)

const networkError = (cause: unknown, what: string): StreamRequestError => {
  if (cause instanceof StreamRequestError) return cause
  // Bun appends a hint about fetch's `verbose` option that means nothing to the user.
  const message = (cause instanceof Error ? cause.message : String(cause)).replace(/\s*For more information, pass `verbose: true`.*$/s, "")
  const code = typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined
  const detail = `${what}: ${message === "" ? "no detail" : message}${code === undefined || message.includes(code) ? "" : ` (${code})`}`
  return new StreamRequestError({ reason: "network", detail, cause })
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
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

/** What {@link streamChat} needs. */
export interface StreamChatOptions {
  readonly request: PreparedRequest
  readonly dialect: Dialect
  readonly policy: RetryPolicy
  /** Aborting it aborts the HTTP request (or the pause before a retry). */
  readonly signal: AbortSignal
  /** After each network read that added text: the raw reply of this attempt so far (a retry starts again from ""). */
  readonly onText: (raw: string) => void
}

/** A complete raw reply and what the provider said it cost. */
export interface StreamResult {
  readonly raw: string
  readonly usage: TokenUsage
}

const attempt = async (options: StreamChatOptions, body: string): Promise<StreamResult> => {
  const { request, signal } = options
  const response = await fetch(request.url, { method: request.method, headers: request.headers, body, signal }).catch((cause: unknown) => {
    throw networkError(cause, "the request failed")
  })
  if (!response.ok) {
    const text = await response.text().catch(() => "")
    throw new StreamRequestError({ reason: "status", status: response.status, detail: text === "" ? response.statusText : text })
  }
  if (response.body === null) throw new StreamRequestError({ reason: "network", detail: "the response had no body" })
  const read = options.dialect === "openai" ? openAiPieces : anthropicPieces
  const sse = makeSseDecoder()
  const decoder = new TextDecoder()
  let raw = ""
  let usage: TokenUsage = {}
  let complete = false
  const apply = (piece: StreamPiece) => {
    switch (piece.type) {
      case "text":
        raw += piece.text
        return
      case "usage":
        usage = { ...usage, ...piece.usage }
        return
      case "complete":
        complete = true
        return
      case "error":
        throw new StreamRequestError({ reason: "provider", detail: piece.message, cause: piece.body })
      default: {
        const _exhaustive: never = piece
        return _exhaustive
      }
    }
  }
  const take = (events: ReadonlyArray<SseEvent>) => {
    for (const event of events) {
      for (const piece of read(event)) apply(piece)
    }
  }
  const reader = response.body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      const before = raw.length
      take(sse.push(decoder.decode(value, { stream: true })))
      if (raw.length > before) options.onText(raw)
    }
    const before = raw.length
    take(sse.push(decoder.decode()))
    take(sse.end())
    if (raw.length > before) options.onText(raw)
  } catch (cause) {
    void reader.cancel().catch(() => undefined)
    throw networkError(cause, "the stream broke off")
  }
  if (!complete) throw new StreamRequestError({ reason: "network", detail: "the stream ended before the reply was complete" })
  return { raw, usage }
}

/**
 * Sends the request and reads the reply, retrying per `policy` (see {@link isRetryable}); a drop midway is
 * retried too, and the retry's text starts again from "" (as BAML's own stream does). Rejects with a
 * StreamRequestError, or with whatever the abort caused once `signal` is aborted.
 */
export const streamChat = async (options: StreamChatOptions): Promise<StreamResult> => {
  let body = options.request.body
  let retries = 0
  for (;;) {
    try {
      return await attempt(options, body)
    } catch (cause) {
      if (options.signal.aborted) throw cause
      const error = networkError(cause, "the model call failed")
      const { plainBody } = options.request
      // A server that rejects the stream_options we added gets BAML's own body, once, not counted as a retry.
      if (error.reason === "status" && error.status === 400 && plainBody !== undefined && body !== plainBody && error.detail.includes("stream_options")) {
        body = plainBody
        continue
      }
      if (retries >= options.policy.maxRetries || !isRetryable(error)) throw error
      await sleep(retryDelay(options.policy, retries), options.signal)
      retries += 1
      if (options.signal.aborted) throw error
    }
  }
}
