// LlmClient over real HTTP: the generated BAML client calls the in-process endpoint (scripted or offline model).
import { describe, expect, test } from "bun:test"
import { Chunk, Deferred, Effect, Either, Fiber, type Layer, Stream } from "effect"
import type { LlmMemory } from "../src/domain/projections/memoryTypes.ts"
import { tokensOf } from "../src/domain/tokens.ts"
import { builtinParameters } from "./support/toolParams.ts"
import { LlmClient, type LlmChunk, LlmError, type LlmTool } from "../src/llm/LlmClient.ts"
import { type EndpointEvent, OfflineEndpoint, renderReply, type Script, ScriptError } from "../src/llm/offline.ts"
import { layerFromEnv } from "./support/providers.ts"

const tools: ReadonlyArray<LlmTool> = [
  { name: "eval", description: "Run JavaScript in a sandbox", parameters: builtinParameters("eval") },
  { name: "read_file", description: "Read a workspace file", parameters: builtinParameters("read_file") }
]
const ask = (text: string): LlmMemory => ({ messages: [{ role: "user", text }] })

const run = <A, E>(layer: Layer.Layer<LlmClient | OfflineEndpoint, ScriptError>, program: Effect.Effect<A, E, LlmClient | OfflineEndpoint>) =>
  Effect.runPromise(program.pipe(Effect.provide(layer)))

/** Runs one turn (model turn `modelTurn` of its session) to the end: its chunks, or its error. */
const turn = (memory: LlmMemory, turnId: string, modelTurn = 0) =>
  Effect.flatMap(LlmClient, (llm) => Stream.runCollect(llm.stream({ memory, tools, turnId, modelTurn })).pipe(Effect.map(Chunk.toArray), Effect.either))

const deltas = (chunks: ReadonlyArray<LlmChunk>) => chunks.flatMap((c) => (c.type === "delta" ? [c.text] : []))
const toolCalls = (chunks: ReadonlyArray<LlmChunk>) => chunks.filter((c) => c.type === "tool_call")
const requestsOf = (events: ReadonlyArray<EndpointEvent>, turnKey: string) =>
  events.flatMap((e) => (e.type === "request" && e.turnKey === turnKey ? [e] : []))

const expectChunks = (result: Either.Either<Array<LlmChunk>, LlmError>): Array<LlmChunk> => {
  if (Either.isLeft(result)) throw new Error(`expected a reply, got LlmError: ${result.left.message}`)
  return result.right
}
const expectError = (result: Either.Either<Array<LlmChunk>, LlmError>): LlmError => {
  if (Either.isRight(result)) throw new Error(`expected LlmError, got ${JSON.stringify(result.right)}`)
  return result.left
}

describe("LlmClient (scripted model over HTTP)", () => {
  test("streams the reply in several deltas, each only new text, then done", async () => {
    const text = "Streaming is the point of this runtime: every chunk becomes an AssistantDelta event on the tape, and the UI folds them as they come in, one after another."
    const script: Script = { turns: [{ text, chunkChars: 3, delayMs: 8 }] }
    const chunks = expectChunks(await run(LlmClient.layerScripted(script), turn(ask("hi"), "t1")))
    const ds = deltas(chunks)
    expect(ds.length).toBeGreaterThanOrEqual(3)
    expect(ds.every((d) => d.length > 0)).toBe(true)
    expect(ds.join("")).toBe(text)
    expect(chunks.at(-1)?.type).toBe("done")
    expect(chunks.filter((c) => c.type === "done")).toHaveLength(1)
  })

  test("done carries the token usage of the endpoint's usage chunk", async () => {
    const text = "Counting tokens."
    const script: Script = { turns: [{ text, toolCalls: [{ tool: "eval", args: { code: "1" } }], chunkChars: 8, delayMs: 0 }] }
    const chunks = expectChunks(await run(LlmClient.layerScripted(script), turn(ask("how many tokens?"), "t1")))
    const done = chunks.at(-1)
    if (done?.type !== "done" || done.usage === undefined) throw new Error(`expected done with usage, got ${JSON.stringify(done)}`)
    // The endpoint counts tokens as a provider does (o200k_base): of the raw reply, and of the prompt (system prompt included).
    expect(done.usage.outputTokens).toBe(tokensOf(renderReply(text, [{ tool: "eval", args: { code: "1" } }])))
    expect(done.usage.inputTokens).toBeGreaterThan(100)
  })

  test("every SSE chunk reaches the stream as its own delta (no batching)", async () => {
    const text = "abcdefghij".repeat(20)
    const script: Script = { turns: [{ text, chunkChars: 2, delayMs: 20 }] }
    const chunks = expectChunks(await run(LlmClient.layerScripted(script), turn(ask("spell it out"), "t1")))
    const ds = deltas(chunks)
    expect(ds.join("")).toBe(text)
    // 100 two-character chunks of text; BAML's own stream delivers a partial about every 100 ms (~20 here).
    expect(ds.length).toBeGreaterThanOrEqual(50)
  })

  test("a tool call is parsed into { tool, args, description } and reported once, after the text", async () => {
    const script: Script = {
      turns: [{ text: "Computing.", toolCalls: [{ tool: "eval", args: { code: "[1, 2].map(x => x * 2)" }, description: "double them" }] }]
    }
    const chunks = expectChunks(await run(LlmClient.layerScripted(script), turn(ask("double 1 and 2"), "t1")))
    expect(toolCalls(chunks)).toEqual([{ type: "tool_call", tool: "eval", args: { code: "[1, 2].map(x => x * 2)" }, description: "double them" }])
    expect(chunks.map((c) => c.type).join(",")).toMatch(/^(delta,)+tool_call,done$/)
    expect(deltas(chunks).join("")).toBe("Computing.")
  })

  test("two tool calls in one reply, in order", async () => {
    const script: Script = {
      turns: [{ text: "", toolCalls: [{ tool: "read_file", args: { path: "notes.md" } }, { tool: "eval", args: { code: "6 * 7" } }] }]
    }
    const chunks = expectChunks(await run(LlmClient.layerScripted(script), turn(ask("go"), "t1")))
    expect(toolCalls(chunks)).toEqual([
      { type: "tool_call", tool: "read_file", args: { path: "notes.md" } },
      { type: "tool_call", tool: "eval", args: { code: "6 * 7" } }
    ])
  })

  test("a tool with no class of its own still arrives, args intact, for the runner to judge", async () => {
    const script: Script = { turns: [{ text: "Trying.", toolCalls: [{ tool: "delete_everything", args: { force: true, depth: 3, path: "/" } }] }] }
    const chunks = expectChunks(await run(LlmClient.layerScripted(script), turn(ask("go"), "t1")))
    expect(toolCalls(chunks)).toEqual([{ type: "tool_call", tool: "delete_everything", args: { force: true, depth: 3, path: "/" } }])
  })

  test("each call plays the entry of its model turn, in any order; a script file works like an inline script", async () => {
    const layer = LlmClient.layerScripted("test/scripts/eval-then-answer.json")
    const [first, second, again, events] = await run(
      layer,
      Effect.gen(function* () {
        const b = expectChunks(yield* turn(ask("and?"), "t2", 1))
        const a = expectChunks(yield* turn(ask("what is 17 * 23?"), "t1", 0))
        // Another session (or this one after a restart) at its model turn 1 gets entry 1 again, not a next one.
        const c = expectChunks(yield* turn(ask("and?"), "t3", 1))
        return [a, b, c, (yield* OfflineEndpoint).events()] as const
      })
    )
    expect(toolCalls(first)).toEqual([{ type: "tool_call", tool: "eval", args: { code: "17 * 23" }, description: "Multiply the two numbers" }])
    expect(deltas(second).join("")).toBe("17 × 23 = 391.")
    expect(deltas(again).join("")).toBe("17 × 23 = 391.")
    expect(requestsOf(events, "t1").map((r) => r.entry)).toEqual([0])
    expect(requestsOf(events, "t2").map((r) => r.entry)).toEqual([1])
    expect(requestsOf(events, "t3").map((r) => r.entry)).toEqual([1])
  })

  test("HTTP 500: the retries replay the same entry, then LlmError; the next model turn plays the next entry", async () => {
    const { error, events, next } = await run(
      LlmClient.layerScripted("test/scripts/fail-then-recover.json"),
      Effect.gen(function* () {
        const error = expectError(yield* turn(ask("hi"), "t-fail"))
        const events = (yield* OfflineEndpoint).events()
        const next = expectChunks(yield* turn(ask("again"), "t-next", 1))
        return { error, events, next }
      })
    )
    expect(error).toBeInstanceOf(LlmError)
    expect(error.message).toContain("the provider is overloaded")
    expect(error.message).toContain("500")
    expect(error.retryable).toBe(true)
    const attempts = requestsOf(events, "t-fail")
    expect(attempts.map((r) => r.attempt)).toEqual([1, 2, 3])
    expect(attempts.map((r) => r.entry)).toEqual([0, 0, 0])
    expect(deltas(next).join("")).toBe("Back again: this turn works.")
  })

  test("a connection dropped mid-stream → LlmError after the retries", async () => {
    const script: Script = { turns: [{ text: "This reply will be cut off halfway through.", chunkChars: 4, delayMs: 2, fail: "cut", failMode: "drop" }] }
    const { error, events } = await run(
      LlmClient.layerScripted(script),
      Effect.gen(function* () {
        const error = expectError(yield* turn(ask("hi"), "t1"))
        return { error, events: (yield* OfflineEndpoint).events() }
      })
    )
    expect(error.retryable).toBe(true)
    expect(error.message.length).toBeLessThan(400)
    expect(requestsOf(events, "t1")).toHaveLength(3)
    const closes = events.filter((e) => e.type === "closed")
    expect(closes.map((e) => e.outcome)).toEqual(["dropped", "dropped", "dropped"])
    expect(closes.every((e) => e.chunksSent > 0 && e.chunksSent < e.chunksTotal)).toBe(true)
  })

  test("run pushes the chunks in order to its sink; a sink that fails ends the call with its error, never retried", async () => {
    const text = "Pushed straight from the socket read to the caller, chunk after chunk."
    const script: Script = { turns: [{ text, chunkChars: 5, delayMs: 2 }, { text, chunkChars: 5, delayMs: 2 }] }
    class SinkFull extends Error {}
    const { pushed, failed, events } = await run(
      LlmClient.layerScripted(script),
      Effect.gen(function* () {
        const llm = yield* LlmClient
        const pushed: Array<LlmChunk> = []
        yield* llm.run({ memory: ask("hi"), tools, turnId: "t-push", modelTurn: 0 }, (chunks) => Effect.sync(() => pushed.push(...chunks)))
        let seen = 0
        const failed = yield* Effect.either(
          llm.run({ memory: ask("again"), tools, turnId: "t-sink", modelTurn: 1 }, () => (++seen === 2 ? Effect.fail(new SinkFull("full")) : Effect.void))
        )
        return { pushed, failed, events: (yield* OfflineEndpoint).events() }
      })
    )
    expect(deltas(pushed).join("")).toBe(text)
    expect(pushed.at(-1)?.type).toBe("done")
    if (Either.isRight(failed)) throw new Error("expected the sink's failure")
    expect(failed.left).toBeInstanceOf(SinkFull)
    // The caller's failure is not the provider's: one request, no retry.
    expect(requestsOf(events, "t-sink")).toHaveLength(1)
  })

  test("an exhausted script → LlmError that says so, no hang", async () => {
    const script: Script = { turns: [{ text: "only one" }] }
    const second = await run(
      LlmClient.layerScripted(script),
      Effect.gen(function* () {
        expectChunks(yield* turn(ask("one"), "t1"))
        return expectError(yield* turn(ask("two"), "t2", 1))
      })
    )
    expect(second.message).toContain("script exhausted: entry 1 asked for, the script has 1")
    expect(second.retryable).toBe(true)
  }, 10_000)

  test("a missing script file is a ScriptError when the layer is built", async () => {
    const result = await Effect.runPromise(Effect.either(Effect.provide(LlmClient, LlmClient.layerScripted("test/scripts/nope.json"))))
    expect(Either.isLeft(result) && result.left).toBeInstanceOf(ScriptError)
  })

  test("interrupting mid-reply closes the HTTP request within 100 ms and emits nothing more", async () => {
    const { interruptedAt, closed, received, lateChunks } = await run(
      LlmClient.layerScripted("test/scripts/slow-reply.json"),
      Effect.gen(function* () {
        const llm = yield* LlmClient
        const endpoint = yield* OfflineEndpoint
        const firstDelta = yield* Deferred.make<void>()
        const received: Array<{ chunk: LlmChunk; at: number }> = []
        const fiber = yield* llm.stream({ memory: ask("talk slowly"), tools, turnId: "t-slow", modelTurn: 0 }).pipe(
          Stream.runForEach((chunk) =>
            Effect.sync(() => received.push({ chunk, at: performance.now() })).pipe(Effect.zipRight(Deferred.succeed(firstDelta, undefined)))
          ),
          Effect.fork
        )
        yield* Deferred.await(firstDelta)
        const interruptedAt = performance.now()
        yield* Fiber.interrupt(fiber)
        const closed = yield* endpoint.waitFor((e): e is Extract<EndpointEvent, { type: "closed" }> => e.type === "closed" && e.turnKey === "t-slow")
        const lateChunks = received.filter((r) => r.at > interruptedAt).length
        return { interruptedAt, closed, received: received.length, lateChunks }
      })
    )
    expect(closed.outcome).toBe("aborted")
    expect(closed.at - interruptedAt).toBeLessThan(100)
    expect(closed.chunksSent).toBeLessThan(closed.chunksTotal)
    expect(received).toBeGreaterThan(0)
    expect(lateChunks).toBe(0)
  })
})

describe("LlmClient (offline model over HTTP)", () => {
  test("answers arithmetic with an eval call, then answers with the tool result", async () => {
    const question = "what is 17 * 23?"
    const [first, second] = await run(
      LlmClient.layerOffline({ chunkChars: 8, delayMs: 1 }),
      Effect.gen(function* () {
        const first = expectChunks(yield* turn(ask(question), "t1"))
        const call = toolCalls(first)[0]
        const memory: LlmMemory = {
          messages: [
            { role: "user", text: question },
            {
              role: "assistant",
              turnId: "t1",
              text: deltas(first).join(""),
              toolCalls: call === undefined ? [] : [{ callId: "c1", tool: call.tool, args: call.args, result: "391" }]
            }
          ]
        }
        const second = expectChunks(yield* turn(memory, "t2", 1))
        return [first, second] as const
      })
    )
    expect(toolCalls(first)).toEqual([{ type: "tool_call", tool: "eval", args: { code: "17 * 23" }, description: "Evaluate the arithmetic expression" }])
    expect(deltas(second).join("")).toBe("The result is 391.")
    expect(toolCalls(second)).toEqual([])
  })

  test("says it is the offline model and how to configure a provider", async () => {
    const chunks = expectChunks(await run(LlmClient.layerOffline({ chunkChars: 16, delayMs: 0 }), turn(ask("hello"), "t1")))
    const text = deltas(chunks).join("")
    expect(text).toContain("offline model")
    expect(text).toContain("ANTHROPIC_API_KEY")
    expect(text).toContain("LLM_BASE_URL")
    expect(toolCalls(chunks)).toEqual([])
  })

  test("LlmClient.layer with no provider in the environment runs the offline model", async () => {
    const { model, kind, models, chunks } = await Effect.runPromise(
      Effect.gen(function* () {
        const llm = yield* LlmClient
        const chunks = yield* Stream.runCollect(llm.stream({ memory: ask("run 1 + 1"), tools, turnId: "t1", modelTurn: 0 }))
        return { model: llm.model, kind: llm.kind, models: llm.models, chunks: Chunk.toArray(chunks) }
      }).pipe(Effect.provide(layerFromEnv({})))
    )
    expect(kind).toBe("offline")
    expect(model).toBe("offline")
    expect(models).toEqual([{ name: "offline", provider: "offline", model: "offline", default: true, contextTokens: 8_000 }])
    expect(toolCalls(chunks)).toEqual([{ type: "tool_call", tool: "eval", args: { code: "1 + 1" }, description: "Run the JavaScript you gave me" }])
  })
})

describe("LlmClient (model choices and limits)", () => {
  test("a call for an unknown model is an LlmError naming the choices, not a crash", async () => {
    const result = await Effect.runPromise(
      Effect.flatMap(LlmClient, (llm) => Stream.runCollect(llm.stream({ memory: ask("hi"), tools, turnId: "t1", modelTurn: 0, model: "gpt-9" }))).pipe(
        Effect.either,
        Effect.provide(LlmClient.layerOffline())
      )
    )
    if (Either.isRight(result)) throw new Error("expected an LlmError")
    expect(result.left.message).toBe('unknown model "gpt-9"; the models are: offline')
    expect(result.left.retryable).toBe(false)
  })

  test("a bad TAPE_PROVIDER_IDLE_MS, TAPE_PROVIDER_TIMEOUT_MS or TAPE_MAX_REPLY_BYTES stops the layer with a ConfigError naming it", async () => {
    for (const [name, value] of [["TAPE_PROVIDER_IDLE_MS", "soon"], ["TAPE_PROVIDER_TIMEOUT_MS", "0"], ["TAPE_MAX_REPLY_BYTES", "-1"]] as const) {
      const result = await Effect.runPromise(Effect.either(Effect.provide(LlmClient, layerFromEnv({ [name]: value }))))
      if (Either.isRight(result)) throw new Error(`expected a ConfigError for ${name}=${value}`)
      expect(String(result.left)).toContain(name)
    }
  })
})

describe("the in-process endpoint (scripted)", () => {
  test("a request without a valid x-tape-model-turn header gets a 400 that says so, and plays nothing", async () => {
    const script: Script = { turns: [{ text: "only one" }] }
    const { statuses, events } = await run(
      LlmClient.layerScripted(script),
      Effect.gen(function* () {
        const endpoint = yield* OfflineEndpoint
        const post = (headers: Record<string, string>) =>
          Effect.promise(() =>
            fetch(`${endpoint.baseUrl}/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ messages: [], stream: true }) }).then(
              async (r) => [r.status, await r.text()] as const
            )
          )
        const statuses = []
        for (const value of [undefined, "", "-1", "1e3", "01", "2.5", "9999999999", "0x1"]) {
          statuses.push(yield* post(value === undefined ? {} : { "x-tape-model-turn": value }))
        }
        return { statuses, events: endpoint.events() }
      })
    )
    for (const [status, body] of statuses) {
      expect(status).toBe(400)
      expect(body).toContain("x-tape-model-turn")
    }
    expect(events.flatMap((e) => (e.type === "request" ? [e.entry] : []))).toEqual(statuses.map(() => undefined))
  })
})
