// The pure parts of the model side: the offline model's answers, delta diffing, tool-call and memory conversion.
import { describe, expect, test } from "bun:test"
import { Either } from "effect"
import { builtinParameters } from "./support/toolParams.ts"
import { type LlmChunk, type LlmTool, makeReplyAssembler, toChatMessages, toToolCall } from "../src/llm/LlmClient.ts"
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

  test("after an edited approval, a rejection, a failure or a stop, it says what happened, never quoting the notes as output", () => {
    const one = (tool: string, output: string) =>
      offlineReply([{ role: "user", content: `Tool results:\n<tool_result id="c1" tool="${tool}">\n${output}\n</tool_result>` }]).text
    expect(one("eval", '[The user edited the arguments before approving; it ran with {"code":"2*5"}]\n=> 10')).toBe("The result (with the arguments you edited) is 10.")
    expect(one("eval", "[Rejected by the user: not that one]")).toBe("You rejected the eval call (not that one), so I did not run it. Tell me what to do instead.")
    expect(one("eval", "Error: ReferenceError: x is not defined")).toBe("The eval call failed: ReferenceError: x is not defined")
    expect(one("eval", "[Cancelled (interrupted: stop): it did not run]")).toBe("The eval call was stopped (interrupted: stop): it did not run.")
    for (const text of [one("eval", "[Rejected by the user: no]"), one("eval", "[Cancelled (x): it did not run]")]) expect(text).not.toContain("The result is [")
  })

  test("a follow-up queued while the tool ran arrives with its result: both are answered", () => {
    // BAML renders the flushed follow-up right after the results block, in the same user message.
    const r = offlineReply([{ role: "user", content: 'Tool results:\n<tool_result id="c1" tool="eval">\n=> 4\n</tool_result> and 3*3?' }])
    expect(r.text).toBe("The result is 4.\n\nAs for your next message: That looks like arithmetic, so I'll evaluate it with the eval tool.")
    expect(r.toolCalls).toEqual([{ tool: "eval", args: { code: "3*3" }, description: "Evaluate the arithmetic expression" }])
  })

  test("calls a tool the user names, with its args as JSON (how the offline model reaches your own and MCP tools)", () => {
    expect(offlineReply([{ role: "user", content: 'call mcp__everything__echo {"message": "hi"}' }]).toolCalls).toEqual([
      { tool: "mcp__everything__echo", args: { message: "hi" }, description: "The tool you asked me to call" }
    ])
    expect(offlineReply([{ role: "user", content: "use list_files" }]).toolCalls).toEqual([{ tool: "list_files", args: {}, description: "The tool you asked me to call" }])
    // Not an object, or not JSON: the help, no call.
    expect(offlineReply([{ role: "user", content: "call eval [1]" }]).toolCalls).toEqual([])
    expect(offlineReply([{ role: "user", content: "call eval {nope" }]).toolCalls).toEqual([])
  })

  test("renders every call as { tool, args, description? }, as the Reply parser expects", () => {
    expect(JSON.parse(renderReply("x", [{ tool: "eval", args: { code: "1" } }, { tool: "other", args: { a: 1 }, description: "d" }]))).toEqual({
      text: "x",
      toolCalls: [{ tool: "eval", args: { code: "1" } }, { tool: "other", args: { a: 1 }, description: "d" }]
    })
  })
})

describe("makeReplyAssembler (raw pieces → deltas)", () => {
  const deltasOf = (chunks: ReadonlyArray<LlmChunk>) => chunks.map((c) => (c.type === "delta" ? c.text : `<${c.type}>`)).join("|")
  const make = (options: { maxReplyBytes?: number; parsePartial?: (raw: string) => string | undefined } = {}) =>
    makeReplyAssembler({ maxReplyBytes: options.maxReplyBytes ?? 1 << 20, parsePartial: options.parsePartial ?? (() => undefined) })
  const push = (assembler: ReturnType<typeof make>, pieces: ReadonlyArray<string>) =>
    pieces.flatMap((p) => Either.getOrThrow(assembler.push(p)))

  test("a well-shaped reply streams from the scan, one delta per piece of text", () => {
    const a = make()
    a.attempt()
    expect(deltasOf(push(a, ['{"te', 'xt": "Hel', "lo", '", "toolCalls": []}']))).toBe("Hel|lo")
    expect(a.finish("Hello", []).diverged).toBe(false)
  })

  test("a retry replays what was emitted: nothing twice, then what goes past it", () => {
    const a = make()
    a.attempt()
    const first = push(a, ['{"text": "Hello wo'])
    a.attempt()
    const second = push(a, ['{"text": "Hel', "lo wo", "rld", '"}'])
    expect(deltasOf([...first, ...second])).toBe("Hello wo|rld")
    const { chunks, diverged } = a.finish("Hello world", [])
    expect(chunks).toEqual([])
    expect(diverged).toBe(false)
  })

  test("a retry that says something else emits nothing more and is flagged at the end", () => {
    const a = make()
    a.attempt()
    push(a, ['{"text": "Hello there'])
    a.attempt()
    expect(push(a, ['{"text": "Goodbye, all of you."}'])).toEqual([])
    expect(a.finish("Goodbye, all of you.", []).diverged).toBe(true)
  })

  test("the final reply adds its last text, then its tool calls", () => {
    const a = make()
    a.attempt()
    push(a, ['{"text": "Hi'])
    const call = { type: "tool_call" as const, tool: "eval", args: { code: "1" } }
    expect(a.finish("Hi there", [call]).chunks).toEqual([{ type: "delta", text: " there" }, call])
  })

  test("another shape: BAML's partial parse only as the raw reply grows by half again (O(reply) in all)", () => {
    const parsed: Array<number> = []
    const a = make({
      parsePartial: (raw) => {
        parsed.push(raw.length)
        const m = /"text":\s*"([^"]*)/.exec(raw)
        return m?.[1]
      }
    })
    a.attempt()
    const pieces = ["Sure:\n", '{"text": "', ...Array.from({ length: 2000 }, () => "ab"), '"}']
    const text = deltasOf(push(a, pieces))
    expect(text.replaceAll("|", "")).toBe("ab".repeat(2000).slice(0, text.replaceAll("|", "").length))
    expect(text.length).toBeGreaterThan(1000)
    // 2002 pieces, a handful of parses: each at least 1.5 times the raw length of the one before.
    expect(parsed.length).toBeLessThan(15)
    for (let i = 1; i < parsed.length; i++) expect(parsed[i]!).toBeGreaterThanOrEqual(parsed[i - 1]! * 1.5)
  })

  test("past the reply cap the push fails with a clear, non-retryable error; the deltas before it were emitted", () => {
    const a = make({ maxReplyBytes: 20 })
    a.attempt()
    expect(deltasOf(Either.getOrThrow(a.push('{"text": "abcdef')))).toBe("abcdef")
    const over = a.push("ghijklmnop")
    if (Either.isRight(over)) throw new Error("expected the cap")
    expect(over.left.message).toContain("larger than 20 bytes")
    expect(over.left.retryable).toBe(false)
    // Bytes, not characters: four 3-byte characters are 12 bytes.
    const b = make({ maxReplyBytes: 11 })
    b.attempt()
    expect(Either.isLeft(b.push("€€€€"))).toBe(true)
  })
})

describe("conversions", () => {
  test("tool calls become { tool, args, description? }; the nulls BAML writes for left-out optional args go", () => {
    const offered: ReadonlyMap<string, LlmTool> = new Map(
      ["read_file", "list_files"].map((name) => [name, { name, description: name, parameters: builtinParameters(name) }])
    )
    expect(toToolCall({ tool: "read_file", args: { path: "a.txt" }, description: null }, offered)).toEqual({ type: "tool_call", tool: "read_file", args: { path: "a.txt" } })
    expect(toToolCall({ tool: "list_files", args: { path: null }, description: "look" }, offered)).toEqual({ type: "tool_call", tool: "list_files", args: {}, description: "look" })
    expect(toToolCall({ tool: "list_files", args: null }, offered)).toEqual({ type: "tool_call", tool: "list_files", args: {} })
    // A tool not offered keeps its args as given (its nulls too): the runner's check judges them.
    expect(toToolCall({ tool: "mystery", args: { where: {}, n: null } }, offered)).toEqual({ type: "tool_call", tool: "mystery", args: { where: {}, n: null } })
    expect(toToolCall({ tool: "", args: {} }, offered)).toBeUndefined()
    expect(toToolCall("eval", offered)).toBeUndefined()
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
