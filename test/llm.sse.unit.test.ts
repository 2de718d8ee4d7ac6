// The HTTP path's pure parts: SSE decoding, provider events, request preparation, the retry policies of chat.baml,
// Retry-After, stable partials.
import { describe, expect, test } from "bun:test"
import { stablePartial, toUsage } from "../src/llm/LlmClient.ts"
import { anthropicPieces, makeSseDecoder, openAiPieces, type SseEvent } from "../src/llm/sse.ts"
import { Duration } from "effect"
import { bamlRetryPolicy, parseRetryPolicies, policyDelay } from "../src/llm/retryPolicy.ts"
import { prepareRequest, retryAfterOf } from "../src/llm/streamRequest.ts"

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
    // The event's name survives a CRLF cut after it (the parser alone would read the LF as the event's end).
    expect(decode(["event: message_stop\r", "\ndata: {}\r\n\r\n"])).toEqual([{ event: "message_stop", data: "{}" }])
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
      { type: "complete" },
      { type: "stop" }
    ])
    const error = JSON.stringify({ error: { message: "overloaded", type: "server_error" } })
    expect(openAiPieces({ event: "message", data: error })).toEqual([{ type: "error", message: "overloaded", body: error, retryable: true }])
    const key = JSON.stringify({ error: { message: "bad key", type: "invalid_request_error", code: "invalid_api_key" } })
    expect(openAiPieces({ event: "message", data: key })).toEqual([{ type: "error", message: "bad key", body: key, retryable: false }])
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
    expect(pieces.map((p) => (p.type === "error" ? { type: p.type, message: p.message, retryable: p.retryable } : p))).toEqual([
      { type: "usage", usage: { inputTokens: 15, outputTokens: 1 } },
      { type: "text", text: "{\"text\": \"Hi" },
      { type: "usage", usage: { outputTokens: 7 } },
      { type: "complete" },
      { type: "stop" },
      { type: "error", message: "Overloaded", retryable: true }
    ])
    const bad = { type: "error", error: { type: "invalid_request_error", message: "max_tokens too large" } }
    expect(anthropicPieces({ event: "error", data: JSON.stringify(bad) })).toMatchObject([{ type: "error", retryable: false }])
    // A text block that starts with text of its own.
    const start = { type: "content_block_start", index: 0, content_block: { type: "text", text: "{\"te" } }
    expect(anthropicPieces({ event: "content_block_start", data: JSON.stringify(start) })).toEqual([{ type: "text", text: "{\"te" }])
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
    const prepared = prepareRequest(built({ model: "m", messages: [], stream: true }), "openai", { "x-tape-model-turn": "3" })
    expect(prepared.headers).toEqual({ "x-tape-turn": "t1", "content-type": "application/json", "x-tape-model-turn": "3" })
    expect(JSON.parse(prepared.body)).toEqual({ model: "m", messages: [], stream: true, stream_options: { include_usage: true } })
    expect(prepared.plainBody).toBe(JSON.stringify({ model: "m", messages: [], stream: true }))
  })

  test("BAML's own body gets the usage option appended to its text; any other body reads the same once parsed", () => {
    const compact = (body: object) => ({ ...built(body), body: { text: () => JSON.stringify(body) } })
    // As BAML writes it: `stream` last, no spaces (the appended path keeps BAML's bytes).
    const baml = { model: "m", temperature: 0.2, messages: [{ role: "user", content: 'say "stream":true} and "stream_option" 😀' }], stream: true }
    const appended = prepareRequest(compact(baml), "openai")
    expect(appended.body.startsWith(JSON.stringify(baml).slice(0, -1))).toBe(true)
    expect(JSON.parse(appended.body)).toEqual({ ...baml, stream_options: { include_usage: true } })
    expect(appended.plainBody).toBe(JSON.stringify(baml))
    // Other shapes take the parsing path and get the same answer: stream not last, spaced, a message naming the option.
    const cases: ReadonlyArray<Record<string, unknown>> = [
      { stream: true, model: "m", messages: [] },
      { model: "m", messages: [{ role: "user", content: 'what is "stream_options"?' }], stream: true },
      { model: "m", nested: { stream: true } }
    ]
    for (const body of cases) {
      const prepared = prepareRequest(built(body), "openai")
      const json = JSON.parse(prepared.body) as Record<string, unknown>
      if ("stream" in body) expect(json).toEqual({ ...body, stream_options: { include_usage: true } })
      else expect(json).toEqual(body)
    }
    const spaced = { ...built(baml), body: { text: () => JSON.stringify(baml, null, 1) } }
    expect(JSON.parse(prepareRequest(spaced, "openai").body)).toEqual({ ...baml, stream_options: { include_usage: true } })
  })

  test("a body that already has stream_options, or an Anthropic body, is sent as built", () => {
    const own = { model: "m", stream: true, stream_options: { include_usage: false } }
    expect(prepareRequest(built(own), "openai")).toMatchObject({ body: JSON.stringify(own) })
    expect(prepareRequest(built(own), "openai").plainBody).toBeUndefined()
    // …also when `stream` comes last, as BAML writes it.
    const ownFirst = { model: "m", stream_options: { include_usage: false }, stream: true }
    expect(prepareRequest(built(ownFirst), "openai")).toMatchObject({ body: JSON.stringify(ownFirst) })
    const anthropic = { model: "claude", stream: true, max_tokens: 10 }
    expect(prepareRequest(built(anthropic), "anthropic").body).toBe(JSON.stringify(anthropic))
  })

  test("the retry policies are read from chat.baml as the generated client inlines it", () => {
    const delays = (name: string, n: number) => Array.from({ length: n }, (_, r) => Duration.toMillis(policyDelay(bamlRetryPolicy(name), r)))
    expect(delays("TapeRetry", 3)).toEqual([300, 600, 1200])
    expect(delays("OfflineRetry", 5)).toEqual([10, 20, 40, 80, 100])
    expect(bamlRetryPolicy("TapeRetry").maxRetries).toBe(2)
    expect(() => bamlRetryPolicy("Nope")).toThrow("not declared")
  })

  test("retry_policy blocks: comments, BAML's defaults, constant delay, an unknown strategy", () => {
    const policies = parseRetryPolicies(`
      // retry_policy Commented { max_retries 9 }
      retry_policy A { max_retries 1 }
      retry_policy B {
        max_retries 4 // four
        strategy { type exponential_backoff }
      }
      retry_policy C { max_retries 0 strategy { type constant_delay delay_ms 50 } }`)
    expect([...policies.keys()]).toEqual(["A", "B", "C"])
    expect(policies.get("A")).toEqual({ maxRetries: 1, strategy: { type: "constant_delay", delayMs: 200 } })
    expect(policies.get("B")).toEqual({ maxRetries: 4, strategy: { type: "exponential_backoff", delayMs: 200, multiplier: 1.5, maxDelayMs: 10_000 } })
    expect(policies.get("C")).toEqual({ maxRetries: 0, strategy: { type: "constant_delay", delayMs: 50 } })
    expect(() => parseRetryPolicies("retry_policy D { max_retries 1 strategy { type random } }")).toThrow("unknown strategy")
    expect(() => parseRetryPolicies("retry_policy E { strategy { type constant_delay } }")).toThrow("max_retries")
  })

  test("Retry-After: seconds or an HTTP date, nothing for anything else", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")
    expect(retryAfterOf("30", now)).toEqual(Duration.seconds(30))
    expect(retryAfterOf(" 0 ", now)).toEqual(Duration.seconds(0))
    expect(retryAfterOf("Wed, 21 Oct 2015 07:28:45 GMT", now)).toEqual(Duration.millis(45_000))
    expect(retryAfterOf("Wed, 21 Oct 2015 07:00:00 GMT", now)).toEqual(Duration.millis(0))
    expect(retryAfterOf("soon", now)).toBeUndefined()
    expect(retryAfterOf("-5", now)).toBeUndefined()
    expect(retryAfterOf(undefined, now)).toBeUndefined()
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
