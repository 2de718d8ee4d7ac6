// The fast path against stand-in provider servers over real HTTP: Anthropic's event stream, and an
// OpenAI-compatible server that refuses stream_options and fails once before it answers.
import { afterEach, describe, expect, test } from "bun:test"
import { Chunk, Effect, Either, Stream } from "effect"
import { type LlmChunk, makeLlmClient, type ToolDoc } from "../src/llm/LlmClient.ts"
import { renderReply } from "../src/llm/offline.ts"
import { type ClientSpec, makeRegistry, type Provider, type ProviderKind } from "../src/llm/provider.ts"

const tools: ReadonlyArray<ToolDoc> = [{ name: "eval", description: "Run JavaScript in a sandbox", argsDoc: "{ code: string }" }]

const providerOf = (kind: ProviderKind, client: ClientSpec): Provider => ({
  kind,
  model: "stand-in",
  client,
  registry: makeRegistry(client),
  registryWith: (headers) => makeRegistry(client, headers)
})

const servers: Array<{ stop: (force: boolean) => unknown }> = []
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true)
})

/** A server answering every request with `handle`; the bodies it received, parsed. */
const serve = (handle: (body: Record<string, unknown>, attempt: number) => Response) => {
  const bodies: Array<Record<string, unknown>> = []
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (req) => {
      const body = (await req.json()) as Record<string, unknown>
      bodies.push(body)
      return handle(body, bodies.length)
    }
  })
  servers.push(server)
  return { url: `http://127.0.0.1:${server.port}`, bodies }
}

const sse = (events: ReadonlyArray<readonly [string | undefined, unknown]>) =>
  new Response(
    events.map(([event, data]) => `${event === undefined ? "" : `event: ${event}\n`}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`).join(""),
    { headers: { "content-type": "text/event-stream" } }
  )

const collect = (provider: Provider) =>
  Effect.runPromise(
    Stream.runCollect(makeLlmClient(provider).stream({ memory: { messages: [{ role: "user", text: "hi" }] }, tools, turnId: "t1" })).pipe(
      Effect.map(Chunk.toArray),
      Effect.either
    )
  )

const deltas = (chunks: ReadonlyArray<LlmChunk>) => chunks.flatMap((c) => (c.type === "delta" ? [c.text] : []))

describe("fast path (stand-in providers)", () => {
  test("Anthropic: text deltas become the reply, the tool call is parsed, usage comes from message_start + message_delta", async () => {
    const raw = renderReply("Let me check.", [{ tool: "eval", args: { code: "2 ** 8" } }])
    const pieces = raw.match(/.{1,5}/gs) ?? []
    const { url, bodies } = serve(() =>
      sse([
        ["message_start", { type: "message_start", message: { usage: { input_tokens: 40, output_tokens: 1 } } }],
        ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
        ...pieces.map((text) => ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } }] as const),
        ["content_block_stop", { type: "content_block_stop", index: 0 }],
        ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 17 } }],
        ["message_stop", { type: "message_stop" }]
      ])
    )
    const result = await collect(
      providerOf("anthropic", { provider: "anthropic", options: { model: "claude-test", api_key: "k", max_tokens: 64, base_url: url }, retryPolicy: "OfflineRetry" })
    )
    if (Either.isLeft(result)) throw new Error(result.left.message)
    const chunks = result.right
    expect(deltas(chunks).join("")).toBe("Let me check.")
    expect(chunks.filter((c) => c.type === "tool_call")).toEqual([{ type: "tool_call", tool: "eval", args: { code: "2 ** 8" } }])
    expect(chunks.at(-1)).toEqual({ type: "done", usage: { inputTokens: 40, outputTokens: 17 } })
    expect(bodies).toHaveLength(1)
    expect(bodies[0]).toMatchObject({ model: "claude-test", stream: true, max_tokens: 64 })
    expect(bodies[0]).not.toHaveProperty("stream_options")
  })

  test("OpenAI-compatible: a server refusing stream_options gets BAML's body; a 503 is retried; no usage chunk, no usage", async () => {
    const raw = renderReply("Fine.", [])
    const { url, bodies } = serve((body, n) => {
      if ("stream_options" in body) return Response.json({ error: { message: "Unrecognized request argument: stream_options" } }, { status: 400 })
      if (n === 2) return Response.json({ error: { message: "busy" } }, { status: 503 })
      return sse([
        [undefined, { choices: [{ index: 0, delta: { content: raw }, finish_reason: null }] }],
        [undefined, { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }],
        [undefined, "[DONE]"]
      ])
    })
    const result = await collect(
      providerOf("openai-generic", { provider: "openai-generic", options: { model: "m", base_url: `${url}/v1` }, retryPolicy: "OfflineRetry" })
    )
    if (Either.isLeft(result)) throw new Error(result.left.message)
    expect(deltas(result.right).join("")).toBe("Fine.")
    expect(result.right.at(-1)).toEqual({ type: "done" })
    expect(bodies.map((b) => "stream_options" in b)).toEqual([true, false, false])
  })

  test("OpenAI-compatible: a 401 is not retried and reads like BAML's errors", async () => {
    const { url, bodies } = serve(() => Response.json({ error: { message: "Incorrect API key provided" } }, { status: 401 }))
    const result = await collect(
      providerOf("openai-generic", { provider: "openai-generic", options: { model: "m", base_url: `${url}/v1` }, retryPolicy: "OfflineRetry" })
    )
    if (Either.isRight(result)) throw new Error("expected an LlmError")
    expect(result.left.message).toBe("provider error 401: Incorrect API key provided")
    expect(result.left.retryable).toBe(false)
    expect(bodies).toHaveLength(1)
  })
})
