/**
 * Our own HTTP path of a model call: sends the request BAML built (prompt and provider body) with @effect/platform's
 * HttpClient, reads the event stream, and retries by the BAML retry_policy as one Schedule (Effect.retry). Guards
 * time (no bytes for the idle timeout), size (one event line, error bodies) and hands pieces to the consumer through
 * a bounded buffer. Knows HTTP and SSE; not the Reply schema, not sessions.
 */
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Clock, Data, Duration, Effect, Option, Stream } from "effect"
import { policySchedule, type RetryPolicy } from "./retryPolicy.ts"
import type { ClientSpec } from "./provider.ts"
import { anthropicPieces, makeSseDecoder, openAiPieces, type SseEvent, type TokenUsage } from "./sse.ts"

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

/** A request as BAML's `b.streamRequest` builds it (its HTTPRequest, structurally). */
export interface BuiltRequest {
  readonly url: string
  readonly method: string
  readonly headers: object
  readonly body: { text(): string }
}

/** A request ready to send. */
export interface PreparedRequest {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** The body as BAML built it, when `body` adds `stream_options` (sent instead if the server refuses them). */
  readonly plainBody?: string
}

/** How BAML ends an OpenAI-style streaming body: `stream` is its last key (after the messages). */
const STREAM_LAST = ',"stream":true}'
const USAGE_OPTION = ',"stream_options":{"include_usage":true}}'

/**
 * BAML's request, minus its internal `baml-*` headers, plus `extraHeaders`; an OpenAI-style streaming body also
 * asks for the final usage chunk (`stream_options.include_usage`) unless it already says something about it. A body
 * that ends with `"stream":true` as BAML writes it gets the option appended to its text (parsing and re-encoding the
 * whole prompt cost more than BAML's render, every turn: issue 15); any other body is parsed.
 */
export const prepareRequest = (built: BuiltRequest, dialect: Dialect, extraHeaders: Readonly<Record<string, string>> = {}): PreparedRequest => {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(built.headers)) {
    if (typeof value === "string" && !name.toLowerCase().startsWith("baml-")) headers[name] = value
  }
  Object.assign(headers, extraHeaders)
  const body = built.body.text()
  const base = { url: built.url, headers, body }
  if (dialect !== "openai") return base
  // The body is BAML's valid JSON, so a text ending so ends its top-level object with `stream: true`; a quoted
  // "stream_options" anywhere (a key, or a message saying it) takes the parsing path.
  if (body.endsWith(STREAM_LAST) && !body.includes('"stream_options"')) return { ...base, body: `${body.slice(0, -1)}${USAGE_OPTION}`, plainBody: body }
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
  /**
   * status: an HTTP error response; network: no response, or the stream broke off; provider: an error event in the
   * stream; idle: nothing arrived for the idle timeout; too_large: one event line longer than the reply cap.
   */
  readonly reason: "status" | "network" | "provider" | "idle" | "too_large"
  /** The HTTP status (reason `status`). */
  readonly status?: number
  /** The start of the response body (status), what failed (network, idle, too_large), the provider's message (provider). */
  readonly detail: string
  /** The pause the provider asked for before another attempt (`Retry-After`). */
  readonly retryAfter?: Duration.Duration
  /** Whether the provider's error event allows another attempt (reason `provider`). */
  readonly providerRetryable?: boolean
  readonly cause?: unknown
}> {}

/** Whether a provider's HTTP status says another attempt may succeed: 5xx, 429 (rate limit), 408 (timeout). */
export const retryableStatus = (status: number): boolean => status >= 500 || status === 429 || status === 408

/**
 * Whether another attempt of this call may succeed: a retryable status, no connection, a stream cut midway, a
 * provider error event of a passing kind. A stall (idle) is not retried within the call: it has already cost the
 * idle timeout, and the turn fails with a clear error instead of stalling several times over.
 */
export const isRetryable = (error: StreamRequestError): boolean => {
  switch (error.reason) {
    case "status":
      return error.status === undefined || retryableStatus(error.status)
    case "network":
      return true
    case "provider":
      return error.providerRetryable ?? true
    case "idle":
    case "too_large":
      return false
    default: {
      const _exhaustive: never = error.reason
      return _exhaustive
    }
  }
}

/** A `Retry-After` value (delay-seconds or an HTTP date, relative to `nowMs`) as a pause, or undefined. */
export const retryAfterOf = (value: string | undefined, nowMs: number): Duration.Duration | undefined => {
  const v = value?.trim()
  if (v === undefined || v === "") return undefined
  if (/^[0-9]{1,10}$/.test(v)) return Duration.seconds(Number(v))
  // An HTTP date starts with the day's name (IMF-fixdate, RFC 850, asctime); Date.parse alone reads "-5" as a year.
  const at = /^[A-Za-z]{3}/.test(v) ? Date.parse(v) : Number.NaN
  return Number.isNaN(at) ? undefined : Duration.millis(Math.max(0, at - nowMs))
}

/** The message of what failed, with its code (ECONNREFUSED…), through the platform's error to its cause. */
const describe = (cause: unknown): string => {
  const inner = typeof cause === "object" && cause !== null && "_tag" in cause && "cause" in cause && cause.cause !== undefined ? cause.cause : cause
  // Bun appends a hint about fetch's `verbose` option that means nothing to the user.
  const message = (inner instanceof Error ? inner.message : String(inner)).replace(/\s*For more information, pass `verbose: true`.*$/s, "")
  const code = typeof inner === "object" && inner !== null && "code" in inner && typeof inner.code === "string" ? inner.code : undefined
  return `${message === "" ? "no detail" : message}${code === undefined || message.includes(code) ? "" : ` (${code})`}`
}

const networkError = (what: string) => (cause: unknown): StreamRequestError =>
  cause instanceof StreamRequestError ? cause : new StreamRequestError({ reason: "network", detail: `${what}: ${describe(cause)}`, cause })

/** The limits of one call's HTTP side. */
export interface StreamLimits {
  /** No bytes for this long (waiting for the response, or between two reads) fails the attempt. */
  readonly idleTimeout: Duration.DurationInput
  /** The reply's cap in bytes; one event line longer than this (plus room for its envelope) fails the call. */
  readonly maxReplyBytes: number
  /** A provider asking for a longer pause than this (`Retry-After`) is not retried. */
  readonly maxRetryAfter: Duration.DurationInput
}

/** Bytes of an error response read at most (a 500 with a 200 MB body is cut here, and the connection closed). */
export const ERROR_BODY_BYTES = 4096
/** Most characters of text one socket read's events are merged into, as one piece. */
const MERGE_CHARS = 4096
/** Room for an event's envelope (JSON, field names) beyond the reply text it may carry. */
const LINE_SLACK = 64 * 1024

/** What the stream of a call yields, in order; `attempt` opens each attempt (a retry's text starts again from ""). */
export type ProviderPiece =
  | { readonly type: "attempt" }
  /** More raw reply text of the current attempt. */
  | { readonly type: "text"; readonly text: string }
  /** Token usage of the current attempt (each field the latest the provider sent). */
  | { readonly type: "usage"; readonly usage: TokenUsage }

/** The first `max` bytes of a body (the rest is never read: the stream is closed), decoded; "" if reading fails. */
const bodyPrefix = (response: HttpClientResponse.HttpClientResponse, max: number, idle: Duration.DurationInput): Effect.Effect<string> =>
  response.stream.pipe(
    Stream.timeout(idle),
    Stream.runFoldWhile(
      { parts: new Array<Uint8Array>(), size: 0 },
      (s) => s.size < max,
      (s, chunk) => {
        s.parts.push(chunk)
        return { parts: s.parts, size: s.size + chunk.length }
      }
    ),
    Effect.map(({ parts, size }) => {
      const bytes = new Uint8Array(Math.min(size, max))
      let at = 0
      for (const part of parts) {
        if (at >= bytes.length) break
        const piece = part.subarray(0, bytes.length - at)
        bytes.set(piece, at)
        at += piece.length
      }
      return `${new TextDecoder().decode(bytes)}${size > max ? "…" : ""}`
    }),
    Effect.orElseSucceed(() => "")
  )

/** When the whole call must have ended (the Clock's epoch ms), and the error it then fails with. */
export interface Deadline<E> {
  readonly at: number
  readonly error: () => E
}

/**
 * One call, pushed: sends `request`, reads its event stream in `dialect`, and hands the pieces of each socket read to
 * `emit` from the reading fiber itself (no queue and no consumer fiber in between: the caller's own work per piece, e.g.
 * queueing a report, runs right there, issue 15). Retries per `policy` (see {@link isRetryable}; a drop midway is
 * retried too, and the retry's text starts again after a new `attempt`). Interrupting it aborts the HTTP request (or
 * the pause before a retry). Past `deadline`, attempts and pauses included, it fails with its error (and the request is
 * aborted): one timer for the call, raced once, where `Stream.interruptWhen` on the consumer's side cost a fiber
 * hand-off per piece (half the server's CPU at K = 100, issue 15). A failure of `emit` ends the call with it.
 */
export const callProvider = <E = never, X = never>(
  request: PreparedRequest,
  dialect: Dialect,
  policy: RetryPolicy,
  limits: StreamLimits,
  emit: (pieces: ReadonlyArray<ProviderPiece>) => Effect.Effect<void, X>,
  deadline?: Deadline<E>
): Effect.Effect<void, StreamRequestError | E | X, HttpClient.HttpClient> =>
    Effect.gen(function* () {
      // Scoped per attempt: the request is aborted when its attempt ends, however it ends.
      const client = HttpClient.withScope(yield* HttpClient.HttpClient)
      const read = dialect === "openai" ? openAiPieces : anthropicPieces
      const idle = (what: string) => () =>
        new StreamRequestError({ reason: "idle", detail: `${what} for ${Duration.format(Duration.decode(limits.idleTimeout))}` })
      const lineCap = limits.maxReplyBytes + LINE_SLACK
      const idleMs = Duration.toMillis(Duration.decode(limits.idleTimeout))
      const clock = yield* Effect.clock
      const offerAll = (pieces: ReadonlyArray<ProviderPiece>): Effect.Effect<void, X> => (pieces.length === 0 ? Effect.void : emit(pieces))

      const attempt = (body: string) =>
        Effect.gen(function* () {
          yield* offerAll([{ type: "attempt" }])
          const http = HttpClientRequest.post(request.url).pipe(
            HttpClientRequest.setHeaders(request.headers),
            HttpClientRequest.bodyText(body, request.headers["content-type"] ?? "application/json")
          )
          const response = yield* client.execute(http).pipe(
            Effect.mapError(networkError("the request failed")),
            Effect.timeoutFail({ duration: limits.idleTimeout, onTimeout: idle("no response") })
          )
          if (response.status < 200 || response.status >= 300) {
            const detail = yield* bodyPrefix(response, ERROR_BODY_BYTES, limits.idleTimeout)
            const retryAfter = retryAfterOf(response.headers["retry-after"], yield* Clock.currentTimeMillis)
            return yield* new StreamRequestError({
              reason: "status",
              status: response.status,
              detail: detail === "" ? `HTTP ${response.status}` : detail,
              ...(retryAfter === undefined ? {} : { retryAfter })
            })
          }
          const sse = makeSseDecoder()
          let complete = false
          let stopped = false
          /** Offers what `events` mean; fails on an error event; says whether to read on. */
          const take = (events: ReadonlyArray<SseEvent>): Effect.Effect<boolean, StreamRequestError | X> => {
            const pieces: Array<ProviderPiece> = []
            for (const event of events) {
              for (const piece of read(event)) {
                switch (piece.type) {
                  case "text": {
                    if (stopped) break
                    // The text of one read is one piece (up to MERGE_CHARS): a burst of events becomes one delta, not
                    // one each; bounded, so the text before a reply's cap is still streamed nearly to the cap.
                    const last = pieces[pieces.length - 1]
                    if (last?.type === "text" && last.text.length + piece.text.length <= MERGE_CHARS) {
                      pieces[pieces.length - 1] = { type: "text", text: last.text + piece.text }
                    } else pieces.push(piece)
                    break
                  }
                  case "usage":
                    if (!stopped) pieces.push(piece)
                    break
                  case "complete":
                    complete = true
                    break
                  case "stop":
                    stopped = true
                    break
                  case "error":
                    return Effect.zipRight(
                      offerAll(pieces),
                      Effect.fail(new StreamRequestError({ reason: "provider", detail: piece.message, providerRetryable: piece.retryable, cause: piece.body }))
                    )
                  default: {
                    const _exhaustive: never = piece
                    return _exhaustive
                  }
                }
              }
            }
            return Effect.as(offerAll(pieces), !stopped)
          }
          // One pull per socket read and one watchdog per attempt, not a stream stage (and an idle timer) per chunk.
          const pull = yield* Stream.toPull(response.stream)
          const decoder = new TextDecoder()
          let lastRead = clock.unsafeCurrentTimeMillis()
          const reading = Effect.gen(function* () {
            for (;;) {
              const read = yield* Effect.either(pull)
              lastRead = clock.unsafeCurrentTimeMillis()
              if (read._tag === "Left") {
                if (Option.isSome(read.left)) return yield* Effect.fail(networkError("the stream broke off")(read.left.value))
                return
              }
              let text = ""
              for (const bytes of read.right) text += decoder.decode(bytes, { stream: true })
              const events = sse.push(text)
              if (sse.openLine() > lineCap) {
                return yield* new StreamRequestError({ reason: "too_large", detail: `an event line longer than ${lineCap} characters` })
              }
              if (!(yield* take(events))) return
            }
          })
          /** Fails the attempt once nothing has been read for the idle timeout (checked when it would have passed). */
          const watchdog: Effect.Effect<never, StreamRequestError> = Effect.suspend(() => {
            const left = idleMs - (clock.unsafeCurrentTimeMillis() - lastRead)
            return left <= 0 ? Effect.fail(idle("the model sent nothing")()) : Effect.zipRight(Effect.sleep(Duration.millis(left)), watchdog)
          })
          yield* Effect.raceFirst(reading, watchdog)
          const tail = decoder.decode()
          if (!stopped && tail !== "") yield* take(sse.push(tail))
          if (!stopped) yield* take(sse.end())
          if (!complete) return yield* new StreamRequestError({ reason: "network", detail: "the stream ended before the reply was complete" })
        }).pipe(Effect.scoped)

      let body = request.body
      const refusesStreamOptions = (e: StreamRequestError | X) =>
        e instanceof StreamRequestError && request.plainBody !== undefined && body !== request.plainBody && e.reason === "status" &&
        e.status === 400 && e.detail.includes("stream_options")
      const once = Effect.suspend(() => attempt(body)).pipe(
        // A server that rejects the stream_options we added gets BAML's own body, once, not counted as a retry.
        Effect.catchIf(refusesStreamOptions, () =>
          Effect.suspend(() => {
            body = request.plainBody ?? body
            return attempt(body)
          })
        )
      )
      // A failure of `emit` is the caller's, not the provider's: never retried.
      const schedule = policySchedule<StreamRequestError | X>(policy, {
        retryable: (e) => e instanceof StreamRequestError && isRetryable(e),
        retryAfter: (e) => (e instanceof StreamRequestError ? e.retryAfter : undefined),
        maxRetryAfter: Duration.decode(limits.maxRetryAfter)
      })
      const call = once.pipe(Effect.retry(schedule))
      if (deadline === undefined) return yield* call
      return yield* Effect.raceFirst(
        call,
        Effect.suspend(() =>
          Effect.zipRight(Effect.sleep(Duration.millis(Math.max(0, deadline.at - clock.unsafeCurrentTimeMillis()))), Effect.fail(deadline.error()))
        )
      )
    })

