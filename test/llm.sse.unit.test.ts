// The fast path's pure parts: SSE decoding, provider events, request preparation, retry delays, stable partials.
import { describe, expect, test } from "bun:test"
import { stablePartial, toUsage } from "../src/llm/LlmClient.ts"
import { anthropicPieces, makeSseDecoder, openAiPieces, type SseEvent } from "../src/llm/sse.ts"
import { prepareRequest, RETRY_POLICIES, retryDelay } from "../src/llm/streamRequest.ts"

/** Decodes `text` fed in the given pieces. */
const decode = (pieces: ReadonlyArray<string>): Array<SseEvent> => {
  const decoder = makeSseDecoder()
  return [...pieces.flatMap((p) => decoder.push(p)), ...decoder.end()]
}

const OPENAI_STREAM = [
  ": keep-alive comment\n",
  `data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] })}\n\n`,
  `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "Hé" }, finish_reason: null }] })}\n\n`,
  `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "llo 👋" }, finish_reason: null }] })}\n\n`,
  `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`,
  `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 } })}\n\n`,
  "data: [DONE]\n\n"
].join("")

describe("SSE decoder", () => {
  test("the same events whatever the network split, LF or CRLF", () => {
    const whole = decode([OPENAI_STREAM])
    expect(whole).toHaveLength(6)
    expect(whole.every((e) => e.event === "message")).toBe(true)
    expect(whole.at(-1)?.data).toBe("[DONE]")
    const crlf = OPENAI_STREAM.replace(/\n/g, "\r\n")
    for (const text of [OPENAI_STREAM, crlf]) {
      for (let cut = 0; cut <= text.length; cut += 1) {
        expect(decode([text.slice(0, cut), text.slice(cut)])).toEqual(whole)
      }
      expect(decode(Array.from(text))).toEqual(whole)
    }
  })

  test("a CRLF split between two chunks is one line end, not an empty line", () => {
    expect(decode(["data: a\r", "\ndata: b\r\n\r\n"])).toEqual([{ event: "message", data: "a\nb" }])
    expect(decode(["data: a\r", "\r", "data: b\r\r"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b" }
    ])
  })

  test("comments, event names, multi-line data, one leading space stripped, unknown fields ignored", () => {
    const events = decode([": hello\nevent: content_block_delta\nid: 7\ndata:  two spaces\ndata:x\nretry: 10\n\n", "data\n\n", "event: ping\n\n"])
    expect(events).toEqual([
      { event: "content_block_delta", data: " two spaces\nx" },
      { event: "message", data: "" }
    ])
  })

  test("an event the stream ends without a blank line after is still delivered", () => {
    expect(decode(["data: [DONE]"])).toEqual([{ event: "message", data: "[DONE]" }])
    expect(decode(["data: [DONE]\r"])).toEqual([{ event: "message", data: "[DONE]" }])
  })
})

describe("provider events", () => {
  test("OpenAI: content deltas, the finish, the usage chunk, [DONE], an error", () => {
    const pieces = decode([OPENAI_STREAM]).flatMap(openAiPieces)
    expect(pieces).toEqual([
      { type: "text", text: "Hé" },
      { type: "text", text: "llo 👋" },
      { type: "complete" },
      { type: "usage", usage: { inputTokens: 12, outputTokens: 3 } },
      { type: "complete" }
    ])
    const error = JSON.stringify({ error: { message: "overloaded", type: "server_error" } })
    expect(openAiPieces({ event: "message", data: error })).toEqual([{ type: "error", message: "overloaded", body: error }])
    expect(openAiPieces({ event: "message", data: "not json" })).toEqual([])
  })

  test("Anthropic: text deltas, usage from message_start (cache included) and message_delta, message_stop, error", () => {
    const sse = [
      ["message_start", { type: "message_start", message: { usage: { input_tokens: 10, cache_read_input_tokens: 5, output_tokens: 1 } } }],
      ["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }],
      ["ping", { type: "ping" }],
      ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "{\"text\": \"Hi" } }],
      ["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: "{}" } }],
      ["message_delta", { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 7 } }],
      ["message_stop", { type: "message_stop" }],
      ["error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }]
    ] as const
    const text = sse.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join("")
    const pieces = decode([text]).flatMap(anthropicPieces)
    expect(pieces.map((p) => (p.type === "error" ? { type: p.type, message: p.message } : p))).toEqual([
      { type: "usage", usage: { inputTokens: 15, outputTokens: 1 } },
      { type: "text", text: "{\"text\": \"Hi" },
      { type: "usage", usage: { outputTokens: 7 } },
      { type: "complete" },
      { type: "error", message: "Overloaded" }
    ])
  })
})

describe("request preparation and retries", () => {
  const built = (body: object) => ({
    url: "http://127.0.0.1:1/v1/chat/completions",
    method: "POST",
    headers: { "baml-original-url": "http://127.0.0.1:1/v1", "x-tape-turn": "t1", "content-type": "application/json" },
    body: { text: () => JSON.stringify(body) }
  })

  test("an OpenAI streaming body asks for the usage chunk; BAML's own headers stay home, ours go", () => {
    const prepared = prepareRequest(built({ model: "m", messages: [], stream: true }), "openai")
    expect(prepared.headers).toEqual({ "x-tape-turn": "t1", "content-type": "application/json" })
    expect(JSON.parse(prepared.body)).toEqual({ model: "m", messages: [], stream: true, stream_options: { include_usage: true } })
    expect(prepared.plainBody).toBe(JSON.stringify({ model: "m", messages: [], stream: true }))
  })

  test("a body that already has stream_options, or an Anthropic body, is sent as built", () => {
    const own = { model: "m", stream: true, stream_options: { include_usage: false } }
    expect(prepareRequest(built(own), "openai")).toMatchObject({ body: JSON.stringify(own) })
    expect(prepareRequest(built(own), "openai").plainBody).toBeUndefined()
    const anthropic = { model: "claude", stream: true, max_tokens: 10 }
    expect(prepareRequest(built(anthropic), "anthropic").body).toBe(JSON.stringify(anthropic))
  })

  test("retry delays follow the exponential policies of chat.baml", () => {
    expect([0, 1, 2].map((r) => retryDelay(RETRY_POLICIES.TapeRetry, r))).toEqual([300, 600, 1200])
    expect([0, 1, 2, 3, 4].map((r) => retryDelay(RETRY_POLICIES.OfflineRetry, r))).toEqual([10, 20, 40, 80, 100])
    expect(RETRY_POLICIES.TapeRetry.maxRetries).toBe(2)
  })

  test("usage is reported only when both counts are known", () => {
    expect(toUsage({ inputTokens: 3, outputTokens: 4 })).toEqual({ inputTokens: 3, outputTokens: 4 })
    expect(toUsage({ inputTokens: 3 })).toBeUndefined()
  })
})

describe("stablePartial", () => {
  const reply = (text: string) => ({ text, toolCalls: [] })
  test("waits while the raw text ends inside an escape", () => {
    // Raw model output as JSON source: `\\` in these literals is one backslash in the raw text.
    expect(stablePartial('{"text": "a\\', reply("a\\"))).toBeUndefined()
    expect(stablePartial('{"text": "a\\u00', reply("a\\u00"))).toBeUndefined()
    expect(stablePartial('{"text": "a\\\\', reply("a\\"))).toEqual(reply("a\\"))
    expect(stablePartial('{"text": "a\\n', reply("a\n"))).toEqual(reply("a\n"))
  })

  test("holds back text from an undecoded \\u escape until the reply is whole", () => {
    expect(stablePartial('{"text": "ab\\u00e9c', reply("ab\\u00ec"))).toEqual(reply("ab"))
    expect(stablePartial(`{"text": "abéc`, reply("abéc"))).toEqual(reply("abéc"))
  })
})
