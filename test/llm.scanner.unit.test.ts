// The incremental scanner of a raw reply's text (src/llm/replyScanner.ts), and the fast path that uses it.
import { afterEach, describe, expect, test } from "bun:test"
import { Chunk, Effect, Stream } from "effect"
import { b } from "../baml_client/index.ts"
import { builtinParameters } from "./support/toolParams.ts"
import { LlmClient, type LlmChunk } from "../src/llm/LlmClient.ts"
import { renderReply, type Script } from "../src/llm/offline.ts"
import { makeReplyScanner, type ReplyScanState } from "../src/llm/replyScanner.ts"

/** Feeds `pieces` to a fresh scanner: the text of each push, and the state after each. */
const scan = (pieces: ReadonlyArray<string>) => {
  const scanner = makeReplyScanner()
  const texts: Array<string> = []
  const states: Array<ReplyScanState> = []
  for (const piece of pieces) {
    texts.push(scanner.push(piece))
    states.push(scanner.state)
  }
  return { text: texts.join(""), texts, states, state: scanner.state }
}

/** Every way of cutting `raw` in two, and one piece per UTF-16 code unit. */
const splits = (raw: string): Array<Array<string>> => {
  const out: Array<Array<string>> = []
  for (let i = 0; i <= raw.length; i++) out.push([raw.slice(0, i), raw.slice(i)])
  out.push(raw.split(""))
  return out
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff

/** Checks every split of a well-shaped reply: the text is JSON.parse's, whole pairs only, closed at the closing quote. */
const expectScansLike = (raw: string, body: string = raw) => {
  const expected = (JSON.parse(body) as { text: string }).text
  // Where the text string closes: the state is "closed" exactly from the piece holding that quote.
  for (const pieces of splits(raw)) {
    const result = scan(pieces)
    expect(result.text).toBe(expected)
    expect(result.state).toBe("closed")
    let sofar = ""
    for (const t of result.texts) {
      sofar += t
      // A delta never ends between the two halves of a surrogate pair.
      const k = sofar.length
      if (t.length > 0 && k < expected.length) expect(isHigh(expected.charCodeAt(k - 1)) && isLow(expected.charCodeAt(k))).toBe(false)
      expect(expected.startsWith(sofar)).toBe(true)
    }
    // Before the last piece that adds text, the scan is never "unknown".
    expect(result.states.includes("unknown")).toBe(false)
  }
}

describe("replyScanner: the text of a well-shaped reply, at every split point", () => {
  test("plain text, with tool calls after it", () => {
    expectScansLike(renderReply("Hello, world. Plain text with {braces} and [brackets].", []))
    expectScansLike(renderReply("Computing.", [{ tool: "eval", args: { code: 'console.log("x\\n")' }, description: "run it" }]))
    expectScansLike(renderReply("", [{ tool: "read_file", args: { path: "a.md" } }]))
  })

  test("every JSON escape: \\n \\\" \\\\ \\/ \\b \\f \\r \\t, \\u00e9, a surrogate pair \\ud83d\\ude00", () => {
    expectScansLike('{"text":"a\\nb \\"q\\" back\\\\slash \\/ \\b\\f\\r\\t caf\\u00e9 \\ud83d\\ude00!","toolCalls":[]}')
    expectScansLike('{"text":"\\ud83d\\ude00\\ud83d\\ude01","toolCalls":[]}')
    expectScansLike('{"text":"\\\\\\\\u00e9 is not an escape","toolCalls":[]}')
    expectScansLike('{"text":"\\u00E9\\u00e9\\u0041","toolCalls":[]}')
  })

  test("literal non-ASCII and a literal emoji (JSON.stringify's own output)", () => {
    expectScansLike(renderReply("café 😀 — naïve \u2028 ok\n\"quoted\" \\ end", [{ tool: "eval", args: { code: "1" } }]))
  })

  test("whitespace and fences around the object", () => {
    const body = '{ "text" : "fenced \\"reply\\"\\n", "toolCalls": [] }'
    expectScansLike(`  \n${body}`, body)
    expectScansLike("```json\n" + body + "\n```", body)
    expectScansLike("```JSON\n" + body + "\n```", body)
    expectScansLike("```\n" + body + "\n```", body)
    expectScansLike("\n```json " + body + "```", body)
  })

  test("a lone surrogate is emitted like JSON.parse does, once what follows it is known", () => {
    expectScansLike('{"text":"a\\ud83db","toolCalls":[]}')
    expectScansLike('{"text":"\\ud83d\\n","toolCalls":[]}')
    expectScansLike('{"text":"\\ud83d","toolCalls":[]}')
    expectScansLike('{"text":"\\ude00\\ud83d\\ud83d\\ude00","toolCalls":[]}')
  })

  test("an escape split across chunks waits: nothing half-decoded is emitted", () => {
    const result = scan(['{"text":"ab\\', "u00", "e9", "\\ud83d", "\\ude00", '"}'])
    expect(result.texts).toEqual(["ab", "", "é", "", "😀", ""])
    expect(result.states).toEqual(["text", "text", "text", "text", "text", "closed"])
  })

  test("the state: prefix until the string opens, text inside it, closed after it; nothing after the close", () => {
    const result = scan(["``", "`json\n{", ' "te', 'xt": "', "hi", '", "toolCalls": [{"tool":"eval","code":"\\"x\\""}]}'])
    expect(result.states).toEqual(["prefix", "prefix", "prefix", "text", "text", "closed"])
    expect(result.text).toBe("hi")
  })
})

describe("replyScanner: other shapes are unknown (the caller falls back to BAML)", () => {
  const unknown = [
    '{"toolCalls":[],"text":"tools first"}',
    'Sure! {"text":"prose before the JSON"}',
    '{"texts":"another key"}',
    '{"tex":"a shorter key"}',
    '{"text": null}',
    '{"text": ["not a string"]}',
    '{}',
    "```js\n{\"text\":\"another language\"}\n```",
    "``{\"text\":\"a short fence\"}",
    '[{"text":"an array"}]',
    '{"t\\u0065xt":"an escaped key"}'
  ]
  for (const raw of unknown) {
    test(raw, () => {
      for (const pieces of splits(raw)) {
        const result = scan(pieces)
        expect(result.state).toBe("unknown")
        expect(result.text).toBe("")
        // Once unknown, it stays so and adds nothing.
        const at = result.states.indexOf("unknown")
        expect(result.states.slice(at).every((s) => s === "unknown")).toBe(true)
      }
    })
  }

  test("a bad escape inside the text: what came before it stays, then unknown", () => {
    for (const pieces of splits('{"text":"ok \\x bad","toolCalls":[]}')) {
      const result = scan(pieces)
      expect(result.state).toBe("unknown")
      expect(result.text).toBe("ok ")
    }
    for (const pieces of splits('{"text":"ok \\u12g4","toolCalls":[]}')) {
      expect(scan(pieces).state).toBe("unknown")
    }
  })

  test("after the text has closed it adds nothing more", () => {
    const scanner = makeReplyScanner()
    expect(scanner.push('{"text":"a"')).toBe("a")
    expect(scanner.state).toBe("closed")
    expect(scanner.push(',"toolCalls":[{"tool":"eval","code":"\\"text\\""}]}')).toBe("")
    expect(scanner.state).toBe("closed")
  })
})

const tools = [{ name: "eval", description: "Run JavaScript", parameters: builtinParameters("eval") }]

describe("LlmClient fast path with the scanner (scripted model)", () => {
  const parser = b.parseStream
  const original = parser.Chat
  let parses = 0
  parser.Chat = (...args: Parameters<typeof original>) => {
    parses++
    return original.apply(parser, args)
  }
  afterEach(() => {
    parses = 0
  })

  const runTurn = (script: Script) =>
    Effect.runPromise(
      Effect.flatMap(LlmClient, (llm) => Stream.runCollect(llm.stream({ memory: { messages: [{ role: "user", text: "go" }] }, tools, turnId: "t1", modelTurn: 0 }))).pipe(
        Effect.map((c) => Chunk.toArray(c)),
        Effect.provide(LlmClient.layerScripted(script))
      )
    )
  const deltas = (chunks: ReadonlyArray<LlmChunk>) => chunks.flatMap((c) => (c.type === "delta" ? [c.text] : []))

  test("escapes and emoji stream exactly, one delta per chunk, with no BAML partial parse while in the text", async () => {
    const text = 'Line one\nLine "two" \\ café 😀 \u0001 and \u2028 done.'
    const chunks = await runTurn({ turns: [{ text, chunkChars: 1, delayMs: 0 }] })
    expect(deltas(chunks).join("")).toBe(text)
    expect(chunks.at(-1)?.type).toBe("done")
    // A well-shaped reply never needs BAML's partial parse: the text streams from the scan, the rest from the final parse.
    expect(parses).toBe(0)
  })

  test("tool calls after the text: from the final parse, each once, after all the text, with no partial parse", async () => {
    const text = "Computing {both} of them."
    const calls = [
      { tool: "eval", args: { code: "[1, 2].map(x => x * 2)" }, description: "double them" },
      { tool: "eval", args: { code: '"}" + 1' } }
    ]
    const chunks = await runTurn({ turns: [{ text, toolCalls: calls, chunkChars: 3, delayMs: 0 }] })
    expect(deltas(chunks).join("")).toBe(text)
    expect(chunks.filter((c) => c.type === "tool_call")).toEqual([
      { type: "tool_call", tool: "eval", args: { code: "[1, 2].map(x => x * 2)" }, description: "double them" },
      { type: "tool_call", tool: "eval", args: { code: '"}" + 1' } }
    ])
    expect(chunks.map((c) => c.type).join(",")).toMatch(/^(delta,)+tool_call,tool_call,done$/)
    // Per chunk, O(chunk): no chunk after the text (there are many with a `}`) parses the reply again.
    expect(parses).toBe(0)
  })
})

describe("LlmClient fast path with the scanner (stand-in OpenAI-compatible server)", () => {
  const servers: Array<{ stop: (force: boolean) => unknown }> = []
  afterEach(() => {
    for (const s of servers.splice(0)) s.stop(true)
  })

  /** Answers attempt n with `pieces(n)`, one SSE event per piece a few ms apart; `drop` breaks the stream after them. */
  const serve = (reply: (attempt: number) => { pieces: ReadonlyArray<string>; drop?: boolean }) => {
    let attempts = 0
    const encoder = new TextEncoder()
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (req) => {
        await req.text()
        const { pieces, drop } = reply(++attempts)
        const event = (data: unknown) => encoder.encode(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`)
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            for (const piece of pieces) {
              controller.enqueue(event({ choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] }))
              await Bun.sleep(3)
            }
            if (drop === true) return controller.error(new Error("dropped"))
            controller.enqueue(event({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }))
            controller.enqueue(event("[DONE]"))
            controller.close()
          }
        })
        return new Response(body, { headers: { "content-type": "text/event-stream" } })
      }
    })
    servers.push(server)
    return LlmClient.layerWith({ choices: { models: [{ name: "m", provider: "openai-generic", model: "m", baseUrl: `http://127.0.0.1:${server.port}/v1` }], default: "m" } })
  }
  const collect = (layer: ReturnType<typeof serve>) =>
    Effect.runPromise(
      Effect.flatMap(LlmClient, (llm) => Stream.runCollect(llm.stream({ memory: { messages: [{ role: "user", text: "hi" }] }, tools, turnId: "t1", modelTurn: 0 }))).pipe(
        Effect.map(Chunk.toArray),
        Effect.provide(layer)
      )
    )
  const deltas = (chunks: ReadonlyArray<LlmChunk>) => chunks.flatMap((c) => (c.type === "delta" ? [c.text] : []))
  const piecesOf = (raw: string, n: number) => Array.from({ length: Math.ceil(raw.length / n) }, (_, i) => raw.slice(i * n, (i + 1) * n))

  test("a drop mid-text, then a retry that says the same and more: the text once, in order", async () => {
    const first = renderReply("Hello wor", []).slice(0, 15)
    const raw = renderReply("Hello world, and \\u00e9 more.", [{ tool: "eval", args: { code: "1" } }])
    const chunks = await collect(serve((n) => (n === 1 ? { pieces: piecesOf(first, 3), drop: true } : { pieces: piecesOf(raw, 2) })))
    expect(deltas(chunks).join("")).toBe("Hello world, and \\u00e9 more.")
    expect(chunks.filter((c) => c.type === "tool_call")).toEqual([{ type: "tool_call", tool: "eval", args: { code: "1" } }])
  })

  test("a retry that says something else: nothing of it is streamed over what was sent", async () => {
    const first = renderReply("Hello there, friend", []).slice(0, 20)
    const chunks = await collect(serve((n) => (n === 1 ? { pieces: piecesOf(first, 4), drop: true } : { pieces: piecesOf(renderReply("Goodbye, all of you.", []), 4) })))
    const streamed = deltas(chunks).join("")
    // What was streamed before the drop (all of "Hello there", or less when the drop overtook the last pieces) is
    // all there is: the retry's other text ("Goodbye, al…", the same length) never streams over it.
    expect("Hello there".startsWith(streamed)).toBe(true)
    expect(streamed.length).toBeGreaterThan(0)
    expect(chunks.at(-1)?.type).toBe("done")
  })

  test("an unknown shape (prose before the JSON) falls back to BAML's partial parse and still streams the text", async () => {
    const text = "The answer is 42, as \"usual\"."
    const raw = `Sure, here it is:\n${renderReply(text, [{ tool: "eval", args: { code: "6 * 7" } }])}`
    const chunks = await collect(serve(() => ({ pieces: piecesOf(raw, 5) })))
    expect(deltas(chunks).join("")).toBe(text)
    expect(deltas(chunks).length).toBeGreaterThan(1)
    expect(chunks.filter((c) => c.type === "tool_call")).toEqual([{ type: "tool_call", tool: "eval", args: { code: "6 * 7" } }])
  })

  test("tool calls first (another key first): BAML finds both", async () => {
    const raw = JSON.stringify({ toolCalls: [{ tool: "eval", args: { code: "2" } }], text: "Then text." })
    const chunks = await collect(serve(() => ({ pieces: piecesOf(raw, 6) })))
    expect(deltas(chunks).join("")).toBe("Then text.")
    expect(chunks.filter((c) => c.type === "tool_call")).toEqual([{ type: "tool_call", tool: "eval", args: { code: "2" } }])
  })
})
