/**
 * Fake model providers over real HTTP, for the LLM client's own HTTP path: each request is answered by a plan (a
 * status, headers, then raw writes, stalls, floods or a dropped connection), and the documented streaming formats of
 * OpenAI chat completions and Anthropic messages are built here byte for byte. Tests only; records every request.
 */
import { Chunk, Clock, ConfigProvider, Effect, Layer, TestClock } from "effect"
import { LlmClient } from "../../src/llm/LlmClient.ts"

/** One step of a streamed answer. */
export type Step =
  /** These bytes, as they are (see {@link split} to cut them anywhere, inside a UTF-8 character too). */
  | { readonly write: string | Uint8Array }
  /** Send nothing more and keep the connection open (until the client goes away). */
  | { readonly stall: true }
  /** Cut the connection (once `after` resolves, e.g. when the client has shown what came before). */
  | { readonly drop: true; readonly after?: Promise<unknown> }
  /** `chunk` again and again, `bytes` in all, as fast as the client reads (its own backpressure). */
  | { readonly flood: { readonly chunk: string; readonly bytes: number } }
  /** `chunk` every `everyMs`, for ever (a slow reply that never ends). */
  | { readonly trickle: { readonly chunk: string; readonly everyMs: number } }

/** How one request is answered. */
export interface Plan {
  /** Never answer at all (no status line, no headers). */
  readonly hang?: true
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
  readonly steps: ReadonlyArray<Step>
}

/** A request the fake saw, and how its answer ended. */
export interface SeenRequest {
  readonly n: number
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Record<string, unknown>
  /** Set when the answer ended: completed (all sent), aborted (the client went away), dropped (cut by the plan). */
  closed?: { readonly outcome: "completed" | "aborted" | "dropped"; readonly bytesSent: number }
}

export interface FakeProvider {
  /** `http://127.0.0.1:<port>` (append `/v1` for OpenAI-style base URLs). */
  readonly url: string
  readonly requests: Array<SeenRequest>
  /** Resolves when `predicate` holds on the requests (checked on each request and each close). */
  readonly until: (predicate: (requests: ReadonlyArray<SeenRequest>) => boolean) => Promise<void>
  readonly stop: () => void
}

const encoder = new TextEncoder()

/** Starts a fake provider answering request n (1-based) with `plan(n, body)`. */
export const startFake = (plan: (n: number, body: Record<string, unknown>) => Plan): FakeProvider => {
  const requests: Array<SeenRequest> = []
  const waiters = new Set<() => void>()
  const changed = () => {
    for (const w of [...waiters]) w()
  }
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch: async (req) => {
      const parsed: unknown = await req.json().catch(() => ({}))
      const body = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? { ...parsed } : {}
      const seen: SeenRequest = { n: requests.length + 1, path: new URL(req.url).pathname, headers: Object.fromEntries(req.headers), body }
      requests.push(seen)
      changed()
      const { hang, status = 200, headers = { "content-type": "text/event-stream" }, steps } = plan(seen.n, body)
      if (hang === true) return new Promise<Response>(() => undefined)
      let sent = 0
      let step = 0
      let flooded = 0
      const close = (outcome: "completed" | "aborted" | "dropped") => {
        if (seen.closed !== undefined) return
        seen.closed = { outcome, bytesSent: sent }
        changed()
      }
      req.signal.addEventListener("abort", () => close("aborted"), { once: true })
      const stream = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            for (;;) {
              const s = steps[step]
              if (s === undefined) {
                close("completed")
                controller.close()
                return
              }
              if ("write" in s) {
                step++
                const bytes = typeof s.write === "string" ? encoder.encode(s.write) : s.write
                sent += bytes.length
                controller.enqueue(bytes)
                return
              }
              if ("stall" in s) return new Promise<void>(() => undefined)
              if ("trickle" in s) {
                const { chunk, everyMs } = s.trickle
                return new Promise<void>((resolve) => setTimeout(resolve, everyMs)).then(() => {
                  if (seen.closed !== undefined) return
                  const bytes = encoder.encode(chunk)
                  sent += bytes.length
                  controller.enqueue(bytes)
                })
              }
              if ("drop" in s) {
                return Promise.resolve(s.after).then(() => {
                  close("dropped")
                  // Erroring the body resets the connection; `undefined` keeps Bun from printing it as a crash.
                  controller.error(undefined)
                })
              }
              if (flooded < s.flood.bytes) {
                const bytes = encoder.encode(s.flood.chunk)
                flooded += bytes.length
                sent += bytes.length
                controller.enqueue(bytes)
                return
              }
              step++
              flooded = 0
            }
          },
          cancel() {
            close("aborted")
          }
        },
        { highWaterMark: 0 }
      )
      return new Response(status === 200 || steps.length > 0 ? stream : null, { status, headers })
    }
  })
  const until = (predicate: (requests: ReadonlyArray<SeenRequest>) => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!predicate(requests)) return
        waiters.delete(check)
        resolve()
      }
      waiters.add(check)
      check()
    })
  return { url: `http://127.0.0.1:${server.port}`, requests, until, stop: () => void server.stop(true) }
}

/** The UTF-8 bytes of `text` in writes of `n` bytes (a network split that falls anywhere: across events, inside a character). */
export const split = (text: string, n: number): Array<Step> => {
  const bytes = encoder.encode(text)
  const out: Array<Step> = []
  for (let i = 0; i < bytes.length; i += n) out.push({ write: bytes.subarray(i, i + n) })
  return out
}

/** One SSE event as a provider writes it. */
const event = (data: unknown, name?: string, eol = "\n"): string =>
  `${name === undefined ? "" : `event: ${name}${eol}`}data: ${typeof data === "string" ? data : JSON.stringify(data)}${eol}${eol}`

/** Pieces of `raw` of `n` characters. */
const piecesOf = (raw: string, n: number): Array<string> => Array.from({ length: Math.ceil(raw.length / n) }, (_, i) => raw.slice(i * n, (i + 1) * n))

/** Token counts a fake reports. */
export interface FakeUsage {
  readonly input: number
  readonly output: number
}

/**
 * An OpenAI chat-completions stream of `raw` (https://platform.openai.com/docs/api-reference/chat-streaming): a role
 * chunk, content chunks of `chunkChars`, a finish chunk, the usage chunk (`choices: []`, as with
 * `stream_options.include_usage`), then `data: [DONE]`.
 */
export const openAiEvents = (raw: string, options: { readonly chunkChars?: number; readonly usage?: FakeUsage; readonly eol?: string } = {}): string => {
  const eol = options.eol ?? "\n"
  const base = { id: "chatcmpl-7", object: "chat.completion.chunk", created: 1_700_000_000, model: "gpt-4.1-2025-04-14", system_fingerprint: "fp_1" }
  const usageNull = options.usage === undefined ? {} : { usage: null }
  const chunk = (delta: object, finish: string | null) => event({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usageNull }, undefined, eol)
  return [
    chunk({ role: "assistant", content: "", refusal: null }, null),
    ...piecesOf(raw, options.chunkChars ?? 5).map((content) => chunk({ content }, null)),
    chunk({}, "stop"),
    options.usage === undefined
      ? ""
      : event({ ...base, choices: [], usage: { prompt_tokens: options.usage.input, completion_tokens: options.usage.output, total_tokens: options.usage.input + options.usage.output } }, undefined, eol),
    event("[DONE]", undefined, eol)
  ].join("")
}

/**
 * An Anthropic messages stream of `raw` (https://docs.anthropic.com/en/docs/build-with-claude/streaming): message_start
 * (usage), content_block_start, ping, content_block_delta (text_delta) of `chunkChars`, content_block_stop,
 * message_delta (stop_reason, usage), message_stop; `errorAfter` puts an `error` event after that many deltas instead.
 */
export const anthropicEvents = (
  raw: string,
  options: {
    readonly chunkChars?: number
    readonly usage?: FakeUsage
    readonly eol?: string
    readonly errorAfter?: { readonly deltas: number; readonly type: string; readonly message: string }
  } = {}
): string => {
  const eol = options.eol ?? "\n"
  const e = (name: string, data: object) => event(data, name, eol)
  const usage = options.usage ?? { input: 25, output: 15 }
  const deltas = piecesOf(raw, options.chunkChars ?? 5).map((text) =>
    e("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })
  )
  const head = [
    e("message_start", {
      type: "message_start",
      message: { id: "msg_01", type: "message", role: "assistant", content: [], model: "claude-sonnet-4-5", stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input, output_tokens: 1 } }
    }),
    e("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
    e("ping", { type: "ping" })
  ]
  if (options.errorAfter !== undefined) {
    const { deltas: n, type, message } = options.errorAfter
    return [...head, ...deltas.slice(0, n), e("error", { type: "error", error: { type, message } })].join("")
  }
  return [
    ...head,
    ...deltas,
    e("content_block_stop", { type: "content_block_stop", index: 0 }),
    e("message_delta", { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: usage.output } }),
    e("message_stop", { type: "message_stop" })
  ].join("")
}

/** An LlmClient layer read from `env` (as the server reads the environment), e.g. `{ ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL }`. */
export const layerFromEnv = (env: Readonly<Record<string, string>>) =>
  LlmClient.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))

/** Runs `body` with a fake provider that is stopped afterwards. */
export const withFake = <A>(plan: (n: number, body: Record<string, unknown>) => Plan, body: (fake: FakeProvider) => Promise<A>): Promise<A> => {
  const fake = startFake(plan)
  return body(fake).finally(() => fake.stop())
}

/** Effect form of {@link FakeProvider.until}. */
export const untilSeen = (fake: FakeProvider, predicate: (requests: ReadonlyArray<SeenRequest>) => boolean) => Effect.promise(() => fake.until(predicate))

/**
 * Waits until the TestClock has a timer pending `ms` from now: the guard under test has armed it (an idle timeout,
 * the total timeout, the pause before a retry). Polls that state between turns of the event loop, a bounded number
 * of times, and dies naming the pending timers when it never appears (the guard is missing or arms another delay).
 */
export const armed = (ms: number) =>
  Effect.gen(function* () {
    let pending: ReadonlyArray<number> = []
    for (let i = 0; i < 50_000; i++) {
      const now = yield* Clock.currentTimeMillis
      pending = Chunk.toReadonlyArray(yield* TestClock.sleeps()).map((at) => at - now)
      if (pending.includes(ms)) return
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
    return yield* Effect.die(new Error(`no timer of ${ms} ms was armed; pending: ${pending.join(", ") || "none"}`))
  })
