// The Anthropic and OpenAI paths against fake providers of our own over real HTTP, reached through ANTHROPIC_BASE_URL
// and OPENAI_BASE_URL, replaying the documented streaming formats (CRLF, split chunks, ping, usage, error events):
// what reaches the tape, and every provider fault guard (idle, total, reply cap, error bodies, Retry-After, drops).
// Timing cases run on the TestClock: a guard's timer is checked armed with its delay, then the clock is moved.
import { describe, expect, test } from "bun:test"
import { Chunk, Deferred, Effect, Either, Fiber, Stream, TestClock, TestContext } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { builtinParameters } from "./support/toolParams.ts"
import { LlmClient, type LlmChunk, type LlmError, type LlmTool } from "../src/llm/LlmClient.ts"
import { renderReply } from "../src/llm/offline.ts"
import { withPipeline } from "./support/pipeline.ts"
import { anthropicEvents, armed, layerFromEnv, openAiEvents, type Plan, split, untilSeen, withFake } from "./support/providers.ts"

const anthropicEnv = (url: string, extra: Record<string, string> = {}) => ({ ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: url, ...extra })
const openAiEnv = (url: string, extra: Record<string, string> = {}) => ({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${url}/v1`, ...extra })

const sse = (text: string): Plan => ({ steps: [{ write: text }] })

// ---- on the tape ----

const ended = (tape: ReadonlyArray<Envelope>) => tape.some((e) => e.type === "TurnCompleted" || e.type === "TurnFailed")

/** Sends `texts` one after the other in one session (each waits for its turn to end): the tape. */
const converse = (env: Record<string, string>, texts: ReadonlyArray<string>) =>
  withPipeline(layerFromEnv(env), (p) =>
    Effect.gen(function* () {
      const session = yield* p.create()
      let tape: ReadonlyArray<Envelope> = []
      for (const [i, text] of texts.entries()) {
        yield* p.submit(session, { type: "send_message", text })
        tape = yield* p.waitFor(session, (t) => t.filter((e) => e.type === "TurnCompleted" || e.type === "TurnFailed").length > i && ended(t))
      }
      return tape
    })
  )

const textOn = (tape: ReadonlyArray<Envelope>) => tape.flatMap((e) => (e.type === "AssistantDelta" ? [e.text] : [])).join("")
const ofType = <T extends Envelope["type"]>(tape: ReadonlyArray<Envelope>, type: T) =>
  tape.filter((e): e is Extract<Envelope, { readonly type: T }> => e.type === type)

const REPLY = renderReply('Let me compute that: "2 ** 8" — café 😀.', [{ tool: "eval", args: { code: "2 ** 8" }, description: "power of two" }])
const TEXT = 'Let me compute that: "2 ** 8" — café 😀.'

describe("Anthropic (ANTHROPIC_BASE_URL): the documented stream reaches the tape", () => {
  test("CRLF line ends, writes split every 7 bytes: text, the tool call and the usage of message_start + message_delta", async () => {
    await withFake(
      () => ({ steps: split(anthropicEvents(REPLY, { chunkChars: 4, usage: { input: 321, output: 45 }, eol: "\r\n" }), 7) }),
      async (fake) => {
        const tape = await converse(anthropicEnv(fake.url), ["what is 2 ** 8?"])
        expect(textOn(tape)).toBe(TEXT)
        expect(ofType(tape, "ToolCallRequested").map((e) => [e.tool, e.args, e.description])).toEqual([["eval", { code: "2 ** 8" }, "power of two"]])
        expect(ofType(tape, "TurnCompleted").map((e) => e.usage)).toEqual([{ inputTokens: 321, outputTokens: 45 }])
        expect(ofType(tape, "TurnStarted").map((e) => e.model)).toEqual(["claude-sonnet-4-5"])
        const [request] = fake.requests
        expect(request?.path).toBe("/v1/messages")
        expect(request?.headers["x-api-key"]).toBe("sk-ant-test")
        expect(request?.headers["anthropic-version"]).toBeString()
        expect(request?.body).toMatchObject({ model: "claude-sonnet-4-5", stream: true, max_tokens: 4096 })
        // Every tool is offered with its real schema in the output format.
        const prompt = JSON.stringify(request?.body)
        for (const name of ["eval", "read_file", "list_files"]) expect(prompt).toContain(`tool: \\"${name}\\"`)
        // No host is allowed here, so http_get cannot work and is not offered.
        expect(prompt).not.toContain("http_get")
        expect(prompt).toContain("code: string")
      }
    )
  })

  test("an overloaded_error event mid-stream is retried; the retry's replayed text reaches the tape once", async () => {
    await withFake(
      (n) =>
        n === 1
          ? { steps: split(anthropicEvents(REPLY, { chunkChars: 4, errorAfter: { deltas: 6, type: "overloaded_error", message: "Overloaded" } }), 50) }
          : sse(anthropicEvents(REPLY, { chunkChars: 9 })),
      async (fake) => {
        const tape = await converse(anthropicEnv(fake.url), ["go"])
        expect(fake.requests).toHaveLength(2)
        expect(textOn(tape)).toBe(TEXT)
        expect(ofType(tape, "TurnCompleted")).toHaveLength(1)
      }
    )
  })

  test("an invalid_request_error event mid-stream ends the turn at once, the text so far kept", async () => {
    await withFake(
      () => sse(anthropicEvents(REPLY, { chunkChars: 4, errorAfter: { deltas: 6, type: "invalid_request_error", message: "prompt is too long" } })),
      async (fake) => {
        const tape = await converse(anthropicEnv(fake.url), ["go"])
        expect(fake.requests).toHaveLength(1)
        const [failed] = ofType(tape, "TurnFailed")
        expect(failed?.error).toBe("provider error: prompt is too long")
        expect(failed?.retryable).toBe(false)
        expect(TEXT.startsWith(textOn(tape))).toBe(true)
        expect(textOn(tape).length).toBeGreaterThan(0)
      }
    )
  })

  test("a flood past TAPE_MAX_REPLY_BYTES fails the turn, keeps the text so far, stops reading, and the next turn works", async () => {
    const head = anthropicEvents("", {}).split("event: content_block_stop")[0] ?? ""
    const delta = (text: string) => `event: content_block_delta\ndata: ${JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })}\n\n`
    const FLOOD = 150 * 1024 * 1024
    await withFake(
      (n) =>
        n === 1
          ? { steps: [{ write: head + delta('{"text": "') }, { flood: { chunk: delta("a".repeat(1000)), bytes: FLOOD } }] }
          : sse(anthropicEvents(renderReply("Fine again.", []))),
      async (fake) => {
        const tape = await converse(anthropicEnv(fake.url, { TAPE_MAX_REPLY_BYTES: "65536" }), ["flood me", "and now?"])
        const [failed, ...rest] = ofType(tape, "TurnFailed")
        expect(rest).toEqual([])
        expect(failed?.error).toContain("larger than 65536 bytes (TAPE_MAX_REPLY_BYTES)")
        const turns = ofType(tape, "TurnStarted").map((e) => e.turnId)
        const firstText = tape.flatMap((e) => (e.type === "AssistantDelta" && e.turnId === turns[0] ? [e.text] : [])).join("")
        expect(firstText).toMatch(/^a+$/)
        expect(firstText.length).toBeGreaterThan(60_000)
        expect(firstText.length).toBeLessThanOrEqual(65_536)
        await fake.until((r) => r[0]?.closed !== undefined)
        expect(fake.requests[0]?.closed?.outcome).toBe("aborted")
        expect(fake.requests[0]?.closed?.bytesSent).toBeLessThan(FLOOD / 10)
        const secondText = tape.flatMap((e) => (e.type === "AssistantDelta" && e.turnId === turns[1] ? [e.text] : [])).join("")
        expect(secondText).toBe("Fine again.")
        expect(ofType(tape, "TurnCompleted")).toHaveLength(1)
      }
    )
  }, 60_000)
})

describe("OpenAI (OPENAI_BASE_URL): the documented stream reaches the tape", () => {
  test("a burst of events in one write becomes a few deltas, not one per event, with the text exact", async () => {
    const text = "word ".repeat(2_000)
    await withFake(
      () => sse(openAiEvents(renderReply(text, []), { chunkChars: 4 })),
      async (fake) => {
        const tape = await converse(openAiEnv(fake.url), ["a long one"])
        expect(textOn(tape)).toBe(text)
        // 2,500 content events arrive in a few reads: their text is merged per read (at most 4 KB a piece).
        expect(ofType(tape, "AssistantDelta").length).toBeLessThan(100)
      }
    )
  })

  test("content chunks, the finish chunk, the usage chunk and [DONE], split every 3 bytes", async () => {
    await withFake(
      () => ({ steps: split(openAiEvents(REPLY, { chunkChars: 6, usage: { input: 77, output: 33 } }), 3) }),
      async (fake) => {
        const tape = await converse(openAiEnv(fake.url), ["what is 2 ** 8?"])
        expect(textOn(tape)).toBe(TEXT)
        expect(ofType(tape, "ToolCallRequested").map((e) => [e.tool, e.args])).toEqual([["eval", { code: "2 ** 8" }]])
        expect(ofType(tape, "TurnCompleted").map((e) => e.usage)).toEqual([{ inputTokens: 77, outputTokens: 33 }])
        const [request] = fake.requests
        expect(request?.path).toBe("/v1/chat/completions")
        expect(request?.headers["authorization"]).toBe("Bearer sk-test")
        expect(request?.body).toMatchObject({ model: "gpt-4.1", stream: true, stream_options: { include_usage: true } })
      }
    )
  })

  test("CRLF line ends, one byte per write (every CR LF pair cut in two)", async () => {
    await withFake(
      () => ({ steps: split(openAiEvents(REPLY, { chunkChars: 11, usage: { input: 5, output: 6 }, eol: "\r\n" }), 1) }),
      async (fake) => {
        const tape = await converse(openAiEnv(fake.url), ["go"])
        expect(textOn(tape)).toBe(TEXT)
        expect(ofType(tape, "ToolCallRequested")).toHaveLength(1)
        expect(ofType(tape, "TurnCompleted").map((e) => e.usage)).toEqual([{ inputTokens: 5, outputTokens: 6 }])
      }
    )
  })
})

// ---- the guards, on the TestClock ----

const tools: ReadonlyArray<LlmTool> = [{ name: "eval", description: "Run JavaScript", parameters: builtinParameters("eval") }]

/**
 * Runs `body` with an LlmClient read from `env` on the TestClock; `call` starts one call in the background, and its
 * first delta resolves `firstDelta`.
 */
const onTestClock = <A>(
  env: Record<string, string>,
  body: (call: {
    readonly fiber: Fiber.RuntimeFiber<Array<LlmChunk>, LlmError>
    readonly firstDelta: Deferred.Deferred<void>
  }) => Effect.Effect<A, unknown>
): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function* () {
      const llm = yield* LlmClient
      const firstDelta = yield* Deferred.make<void>()
      const fiber = yield* llm.stream({ memory: { messages: [{ role: "user", text: "hi" }] }, tools, turnId: "t1", modelTurn: 0 }).pipe(
        Stream.tap((c) => (c.type === "delta" ? Deferred.succeed(firstDelta, undefined) : Effect.void)),
        Stream.runCollect,
        Effect.map(Chunk.toArray),
        Effect.fork
      )
      return yield* body({ fiber, firstDelta })
    }).pipe(Effect.scoped, Effect.provide(layerFromEnv(env)), Effect.provide(TestContext.TestContext))
  )

const failureOf = (fiber: Fiber.RuntimeFiber<Array<LlmChunk>, LlmError>) =>
  Effect.flatMap(Effect.either(Fiber.join(fiber)), (r) =>
    Either.isLeft(r) ? Effect.succeed(r.left) : Effect.dieMessage(`expected an LlmError, got ${JSON.stringify(r.right)}`)
  )

const textOf = (chunks: ReadonlyArray<LlmChunk>) => chunks.flatMap((c) => (c.type === "delta" ? [c.text] : [])).join("")

describe("provider faults (TestClock)", () => {
  test("a stream that stalls after one chunk ends after TAPE_PROVIDER_IDLE_MS with a clear error", async () => {
    // message_start and the deltas of the reply's first 20 characters, then nothing.
    const opening = anthropicEvents(REPLY.slice(0, 20), { chunkChars: 4 }).split("event: content_block_stop")[0] ?? ""
    await withFake(
      () => ({ steps: [{ write: opening }, { stall: true }] }),
      async (fake) => {
        const error = await onTestClock(anthropicEnv(fake.url, { TAPE_PROVIDER_IDLE_MS: "45000" }), ({ fiber, firstDelta }) =>
          Effect.gen(function* () {
            yield* Deferred.await(firstDelta)
            yield* armed(45_000)
            yield* TestClock.adjust("45 seconds")
            return yield* failureOf(fiber)
          })
        )
        expect(error.message).toBe("the model stalled: the model sent nothing for 45s (TAPE_PROVIDER_IDLE_MS)")
        expect(error.retryable).toBe(true)
        // Not retried within the call, and the connection is closed.
        await fake.until((r) => r[0]?.closed !== undefined)
        expect(fake.requests).toHaveLength(1)
        expect(fake.requests[0]?.closed?.outcome).toBe("aborted")
      }
    )
  })

  test("a provider that never sends its response headers ends after TAPE_PROVIDER_IDLE_MS", async () => {
    await withFake(
      () => ({ hang: true, steps: [] }),
      async (fake) => {
        const error = await onTestClock(anthropicEnv(fake.url, { TAPE_PROVIDER_IDLE_MS: "30000" }), ({ fiber }) =>
          Effect.gen(function* () {
            yield* Effect.promise(() => fake.until((r) => r.length === 1))
            yield* armed(30_000)
            yield* TestClock.adjust("30 seconds")
            return yield* failureOf(fiber)
          })
        )
        expect(error.message).toBe("the model stalled: no response for 30s (TAPE_PROVIDER_IDLE_MS)")
      }
    )
  })

  test("a reply that trickles for ever ends after TAPE_PROVIDER_TIMEOUT_MS, the text so far streamed", async () => {
    const start = anthropicEvents("", {}).split("event: content_block_stop")[0] ?? ""
    const delta = `event: content_block_delta\ndata: ${JSON.stringify({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "z" } })}\n\n`
    await withFake(
      () => ({ steps: [{ write: start + delta.replace('"z"', '"{\\"text\\": \\"z"') }, { trickle: { chunk: delta, everyMs: 5 } }] }),
      async (fake) => {
        const error = await onTestClock(anthropicEnv(fake.url, { TAPE_PROVIDER_TIMEOUT_MS: "90000", TAPE_PROVIDER_IDLE_MS: "900000" }), ({ fiber, firstDelta }) =>
          Effect.gen(function* () {
            yield* Deferred.await(firstDelta)
            yield* armed(90_000)
            yield* TestClock.adjust("90 seconds")
            return yield* failureOf(fiber)
          })
        )
        expect(error.message).toBe("the model call took longer than 1m 30s (TAPE_PROVIDER_TIMEOUT_MS)")
        await fake.until((r) => r[0]?.closed !== undefined)
        expect(fake.requests[0]?.closed?.outcome).toBe("aborted")
      }
    )
  })

  test("a 500 with a 200 MB body: each of the 3 attempts reads a few KB and closes; the pauses are chat.baml's TapeRetry", async () => {
    const HUGE = 200 * 1024 * 1024
    await withFake(
      () => ({ status: 500, headers: { "content-type": "text/plain" }, steps: [{ flood: { chunk: "x".repeat(64 * 1024), bytes: HUGE } }] }),
      async (fake) => {
        const error = await onTestClock(anthropicEnv(fake.url), ({ fiber }) =>
          Effect.gen(function* () {
            for (const [n, pause] of [[1, 300], [2, 600]] as const) {
              yield* untilSeen(fake, (r) => r[n - 1]?.closed !== undefined)
              yield* armed(pause)
              yield* TestClock.adjust(pause)
            }
            return yield* failureOf(fiber)
          })
        )
        expect(fake.requests).toHaveLength(3)
        await fake.until((r) => r.every((q) => q.closed !== undefined))
        for (const r of fake.requests) expect(r.closed?.bytesSent).toBeLessThan(HUGE / 20)
        expect(error.message).toStartWith("provider error 500: xxxx")
        expect(error.message.length).toBeLessThan(400)
        expect(error.retryable).toBe(true)
      }
    )
  })

  test("Retry-After in seconds is waited for (not the policy's 300 ms), then the retry succeeds", async () => {
    await withFake(
      (n) =>
        n === 1
          ? { status: 429, headers: { "content-type": "application/json", "retry-after": "30" }, steps: [{ write: JSON.stringify({ error: { message: "slow down" } }) }] }
          : sse(anthropicEvents(REPLY)),
      async (fake) => {
        const chunks = await onTestClock(anthropicEnv(fake.url), ({ fiber }) =>
          Effect.gen(function* () {
            yield* untilSeen(fake, (r) => r[0]?.closed !== undefined)
            yield* armed(30_000)
            yield* TestClock.adjust("30 seconds")
            return yield* Fiber.join(fiber)
          })
        )
        expect(fake.requests).toHaveLength(2)
        expect(textOf(chunks)).toBe(TEXT)
      }
    )
  })

  test("Retry-After as an HTTP date is waited for until that date", async () => {
    await withFake(
      (n) =>
        n === 1
          ? { status: 503, headers: { "retry-after": "Thu, 01 Jan 1970 00:00:45 GMT" }, steps: [{ write: "busy" }] }
          : sse(openAiEvents(REPLY)),
      async (fake) => {
        const chunks = await onTestClock(openAiEnv(fake.url), ({ fiber }) =>
          Effect.gen(function* () {
            yield* untilSeen(fake, (r) => r[0]?.closed !== undefined)
            // The TestClock starts at the epoch: the date is 45 s away.
            yield* armed(45_000)
            yield* TestClock.adjust("45 seconds")
            return yield* Fiber.join(fiber)
          })
        )
        expect(textOf(chunks)).toBe(TEXT)
      }
    )
  })

  test("a Retry-After past the cap (60 s) is not waited for: the call fails at once and says what was asked", async () => {
    await withFake(
      () => ({ status: 429, headers: { "content-type": "application/json", "retry-after": "3600" }, steps: [{ write: JSON.stringify({ error: { message: "quota" } }) }] }),
      async (fake) => {
        const error = await onTestClock(anthropicEnv(fake.url), ({ fiber }) => failureOf(fiber))
        expect(fake.requests).toHaveLength(1)
        expect(error.message).toBe("provider error 429: quota (it asks to retry after 1h)")
      }
    )
  })

  test("a connection dropped mid-stream is retried after the policy's pause; the text arrives once, exactly", async () => {
    const full = openAiEvents(REPLY, { chunkChars: 3, usage: { input: 1, output: 2 } })
    // The cut comes once the client has streamed text of the first attempt, so the retry has text to replay.
    const cut = Promise.withResolvers<void>()
    await withFake(
      (n) => (n === 1 ? { steps: [{ write: full.slice(0, Math.floor(full.length / 2)) }, { drop: true, after: cut.promise }] } : { steps: split(full, 40) }),
      async (fake) => {
        const chunks = await onTestClock(openAiEnv(fake.url), ({ fiber, firstDelta }) =>
          Effect.gen(function* () {
            yield* Deferred.await(firstDelta)
            cut.resolve()
            yield* untilSeen(fake, (r) => r[0]?.closed !== undefined)
            yield* armed(300)
            yield* TestClock.adjust(300)
            return yield* Fiber.join(fiber)
          })
        )
        expect(fake.requests).toHaveLength(2)
        expect(textOf(chunks)).toBe(TEXT)
        expect(chunks.filter((c) => c.type === "tool_call")).toHaveLength(1)
        expect(chunks.at(-1)).toEqual({ type: "done", usage: { inputTokens: 1, outputTokens: 2 } })
      }
    )
  })

  test("one event line longer than the reply cap fails the call without reading the rest", async () => {
    const FLOOD = 150 * 1024 * 1024
    await withFake(
      () => ({ steps: [{ write: 'data: {"choices":[{"delta":{"content":"' }, { flood: { chunk: "q".repeat(64 * 1024), bytes: FLOOD } }] }),
      async (fake) => {
        const error = await onTestClock(openAiEnv(fake.url, { TAPE_MAX_REPLY_BYTES: "100000" }), ({ fiber }) => failureOf(fiber))
        expect(error.message).toContain("the reply is too large")
        expect(error.retryable).toBe(false)
        await fake.until((r) => r[0]?.closed !== undefined)
        expect(fake.requests).toHaveLength(1)
        expect(fake.requests[0]?.closed?.bytesSent).toBeLessThan(FLOOD / 10)
      }
    )
  })
})

describe("request details", () => {
  test("a provider that keeps the connection open after message_stop: the reply is complete there, not at the idle timeout", async () => {
    await withFake(
      () => ({ steps: [{ write: anthropicEvents(REPLY, { usage: { input: 3, output: 4 } }) }, { stall: true }] }),
      async (fake) => {
        const chunks = await onTestClock(anthropicEnv(fake.url), ({ fiber }) => Fiber.join(fiber))
        expect(textOf(chunks)).toBe(TEXT)
        expect(chunks.at(-1)).toEqual({ type: "done", usage: { inputTokens: 3, outputTokens: 4 } })
        await fake.until((r) => r[0]?.closed !== undefined)
        expect(fake.requests[0]?.closed?.outcome).toBe("aborted")
      }
    )
  }, 10_000)

  test("an OpenAI-compatible server refusing stream_options gets BAML's body; a 503 is retried; no usage chunk, no usage", async () => {
    await withFake(
      (n, body) =>
        "stream_options" in body
          ? { status: 400, headers: { "content-type": "application/json" }, steps: [{ write: JSON.stringify({ error: { message: "Unrecognized request argument: stream_options" } }) }] }
          : n === 2
            ? { status: 503, steps: [{ write: JSON.stringify({ error: { message: "busy" } }) }] }
            : sse(openAiEvents(renderReply("Fine.", []))),
      async (fake) => {
        const chunks = await onTestClock({ LLM_BASE_URL: `${fake.url}/v1`, LLM_MODEL: "m" }, ({ fiber }) =>
          Effect.gen(function* () {
            yield* untilSeen(fake, (r) => r[1]?.closed !== undefined)
            yield* armed(300)
            yield* TestClock.adjust(300)
            return yield* Fiber.join(fiber)
          })
        )
        expect(textOf(chunks)).toBe("Fine.")
        expect(chunks.at(-1)).toEqual({ type: "done" })
        expect(fake.requests.map((r) => "stream_options" in r.body)).toEqual([true, false, false])
      }
    )
  })

  test("a 401 is not retried and reads like BAML's errors", async () => {
    await withFake(
      () => ({ status: 401, headers: { "content-type": "application/json" }, steps: [{ write: JSON.stringify({ error: { message: "Incorrect API key provided" } }) }] }),
      async (fake) => {
        const error = await onTestClock(openAiEnv(fake.url), ({ fiber }) => failureOf(fiber))
        expect(error.message).toBe("provider error 401: Incorrect API key provided")
        expect(error.retryable).toBe(false)
        expect(fake.requests).toHaveLength(1)
      }
    )
  })
})
