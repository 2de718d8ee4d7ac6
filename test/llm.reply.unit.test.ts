// The pure parts of the model side: the offline model's answers, delta diffing, tool-call and memory conversion.
import { describe, expect, test } from "bun:test"
import { advance, emptyProgress, type LlmChunk, toChatMessages, toToolCall } from "../src/llm/LlmClient.ts"
import { arithmeticOf, codeOf, offlineReply, renderReply } from "../src/llm/offline.ts"

describe("offline model", () => {
  test("recognises arithmetic", () => {
    expect(arithmeticOf("2+3*4")).toBe("2+3*4")
    expect(arithmeticOf("what is 17 * 23?")).toBe("17 * 23")
    expect(arithmeticOf("2^10")).toBe("2**10")
    expect(arithmeticOf("hello")).toBeUndefined()
    expect(arithmeticOf("42")).toBeUndefined()
    expect(arithmeticOf("call me at 555-1234 please")).toBeUndefined()
  })

  test("recognises run/eval requests", () => {
    expect(codeOf("run [1,2,3].map(x => x * 2)")).toBe("[1,2,3].map(x => x * 2)")
    expect(codeOf("eval: `Math.max(1, 2)`")).toBe("Math.max(1, 2)")
    expect(codeOf("evaluate ```js\n1 + 1\n```")).toBe("1 + 1")
    expect(codeOf("running late")).toBeUndefined()
  })

  test("answers a plain message by saying what it is and how to configure a provider", () => {
    const r = offlineReply([{ role: "system", content: "..." }, { role: "user", content: "hi" }])
    expect(r.toolCalls).toEqual([])
    expect(r.text).toContain("offline model")
    for (const name of ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AWS_ACCESS_KEY_ID", "LLM_BASE_URL"]) expect(r.text).toContain(name)
  })

  test("answers with the tool result when the last message carries one", () => {
    const r = offlineReply([
      { role: "user", content: "2+2" },
      { role: "assistant", content: "..." },
      { role: "user", content: [{ type: "text", text: 'Tool results:\n<tool_result id="c1" tool="eval">\n4\n</tool_result>' }] }
    ])
    expect(r).toEqual({ text: "The result is 4.", toolCalls: [] })
  })

  test("answers with eval's value, not its => marker, and mentions printed lines", () => {
    const result = (output: string) =>
      offlineReply([{ role: "user", content: `Tool results:\n<tool_result id="c1" tool="eval">\n${output}\n</tool_result>` }]).text
    expect(result("=> 391")).toBe("The result is 391.")
    expect(result("hello\n=> 3")).toBe("The result is 3.\n\nIt printed:\nhello")
  })

  test("renders known tools flat and others with args, as the Reply parser expects", () => {
    expect(JSON.parse(renderReply("x", [{ tool: "eval", args: { code: "1" } }, { tool: "other", args: { a: 1 }, description: "d" }]))).toEqual({
      text: "x",
      toolCalls: [{ tool: "eval", code: "1" }, { tool: "other", args: { a: 1 }, description: "d" }]
    })
  })
})

describe("advance (partial replies → chunks)", () => {
  const run = (partials: ReadonlyArray<{ text?: string | null; toolCalls: Parameters<typeof advance>[1]["toolCalls"] }>) => {
    let progress = emptyProgress
    const chunks: Array<LlmChunk> = []
    for (const p of partials) {
      const step = advance(progress, p)
      progress = step.progress
      chunks.push(...step.chunks)
    }
    return { chunks, progress }
  }

  test("emits only the new text of each partial", () => {
    const { chunks } = run([{ text: null, toolCalls: [] }, { text: "Hel", toolCalls: [] }, { text: "Hel", toolCalls: [] }, { text: "Hello", toolCalls: [] }])
    expect(chunks).toEqual([
      { type: "delta", text: "Hel" },
      { type: "delta", text: "lo" }
    ])
  })

  test("a retry restarting from empty re-emits nothing already sent", () => {
    const { chunks, progress } = run([
      { text: "Hello", toolCalls: [] },
      { text: null, toolCalls: [] },
      { text: "Hel", toolCalls: [] },
      { text: "Hello world", toolCalls: [] }
    ])
    expect(chunks.map((c) => (c.type === "delta" ? c.text : "")).join("")).toBe("Hello world")
    expect(progress.diverged).toBe(false)
  })

  test("emits each tool call once, when it appears", () => {
    const call = { tool: "eval" as const, code: "1+1", description: "why" }
    const { chunks } = run([
      { text: "a", toolCalls: [] },
      { text: "a", toolCalls: [call] },
      { text: "a", toolCalls: [call] },
      { text: "a", toolCalls: [call, { tool: "list_files" as const, path: null }] }
    ])
    expect(chunks).toEqual([
      { type: "delta", text: "a" },
      { type: "tool_call", tool: "eval", args: { code: "1+1" }, description: "why" },
      { type: "tool_call", tool: "list_files", args: {} }
    ])
  })

  test("text that does not extend what was emitted is flagged, not emitted", () => {
    const { chunks, progress } = run([{ text: "Hello", toolCalls: [] }, { text: "Goodbye!", toolCalls: [] }])
    expect(chunks).toEqual([{ type: "delta", text: "Hello" }])
    expect(progress.diverged).toBe(true)
  })
})

describe("conversions", () => {
  test("tool calls become { tool, args, description? }", () => {
    expect(toToolCall({ tool: "read_file", path: "a.txt", description: null })).toEqual({ type: "tool_call", tool: "read_file", args: { path: "a.txt" } })
    expect(toToolCall({ tool: "http_get", url: "https://x" })).toEqual({ type: "tool_call", tool: "http_get", args: { url: "https://x" } })
    // (the generated TS type of JsonValue only admits nested objects; the int tests cover other values)
    expect(toToolCall({ tool: "mystery", args: { where: {} } })).toEqual({ type: "tool_call", tool: "mystery", args: { where: {} } })
  })

  test("memory becomes BAML messages, tool calls paired with results", () => {
    const messages = toChatMessages({
      messages: [
        { role: "user", text: "2+2" },
        { role: "assistant", turnId: "t1", text: "ok", toolCalls: [{ callId: "c1", tool: "eval", args: { code: "2+2" }, result: "4" }] }
      ]
    })
    expect(messages).toEqual([
      { role: "user", text: "2+2", toolCalls: [] },
      { role: "assistant", text: "ok", toolCalls: [{ callId: "c1", tool: "eval", argsJson: '{"code":"2+2"}', result: "4" }] }
    ])
  })
})
