// Compaction with a real provider's dialect (issue 14): a fake OpenAI-compatible provider over real HTTP answers the
// turns and the Summarize calls, reporting usage as a provider does (its own count of the prompt). The memory's size
// anchors on that count; every prompt the provider receives stays under the budget; a summary call that fails (HTTP
// 500, through the client's retries) trims instead, and the session goes on.
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { tokensOf } from "../src/domain/tokens.ts"
import { renderReply } from "../src/llm/offline.ts"
import { withPipeline } from "../src/testing.ts"
import { ask } from "./support/compaction.ts"
import { layerFromEnv, openAiEvents, type SeenRequest, startFake } from "./support/providers.ts"

const BUDGET = 3_000
const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 11}w${i}`).join(" ")
const contentOf = (body: Record<string, unknown>): string =>
  (Array.isArray(body["messages"]) ? body["messages"] : [])
    .map((m: unknown) => (typeof m === "object" && m !== null && "content" in m ? (typeof m.content === "string" ? m.content : JSON.stringify(m.content)) : ""))
    .join("\n")
const isSummary = (body: Record<string, unknown>) => contentOf(body).includes("You summarise the earlier part of a conversation")

describe("compaction over an OpenAI-style provider", () => {
  test("usage-anchored budget: every prompt under it; a failed summary trims; the session goes on", async () => {
    let summaries = 0
    const fake = startFake((_, body) => {
      const prompt = contentOf(body)
      const usage = { input: tokensOf(prompt), output: 50 }
      if (isSummary(body)) {
        summaries++
        // The second compaction's summary fails on every attempt: the writer trims.
        if (summaries >= 2 && summaries <= 4) return { status: 500, steps: [{ write: JSON.stringify({ error: { message: "summariser overloaded" } }) }] }
        return { status: 200, headers: { "content-type": "text/event-stream" }, steps: [{ write: openAiEvents(`Summary ${summaries}: the user asked questions and got answers.`, { usage, chunkChars: 64 }) }] }
      }
      return { status: 200, headers: { "content-type": "text/event-stream" }, steps: [{ write: openAiEvents(renderReply(`Answer: ${words(40, "a")}`, []), { usage, chunkChars: 256 }) }] }
    })
    try {
      const llm = layerFromEnv({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${fake.url}/v1` })
      const tape = await withPipeline(
        llm,
        (p) =>
          Effect.gen(function* () {
            const session = yield* p.create()
            for (let i = 0; i < 40; i++) {
              yield* ask(p, session, `Question ${i}: ${words(40, "q")}`)
            }
            return yield* p.tape(session)
          }),
        { contextTokens: BUDGET }
      )
      const turns = fake.requests.filter((r: SeenRequest) => !isSummary(r.body))
      expect(turns).toHaveLength(40)
      for (const r of fake.requests) expect(tokensOf(contentOf(r.body))).toBeLessThan(BUDGET)
      const count = (type: Envelope["type"]) => tape.filter((e) => e.type === type).length
      expect(count("MemoryCompacted")).toBeGreaterThanOrEqual(2)
      const trimmed = tape.find((e) => e.type === "MemoryTrimmed")
      expect(trimmed?.type === "MemoryTrimmed" ? trimmed.reason : "").toContain("summariser overloaded")
      // The turns' usage is on the tape (the anchor of the memory's size).
      expect(tape.filter((e) => e.type === "TurnCompleted").every((e) => e.type === "TurnCompleted" && e.usage !== undefined)).toBe(true)
    } finally {
      fake.stop()
    }
  }, 120_000)

  test("a summary over TAPE_MAX_REPLY_BYTES is refused, never kept: the memory is trimmed and the turn runs", async () => {
    const fake = startFake((_, body) => {
      const usage = { input: tokensOf(contentOf(body)), output: 50 }
      const text = isSummary(body) ? `Summary: ${"s".repeat(8_000)}` : renderReply(`Answer: ${words(40, "a")}`, [])
      return { status: 200, headers: { "content-type": "text/event-stream" }, steps: [{ write: openAiEvents(text, { usage, chunkChars: 256 }) }] }
    })
    try {
      const llm = layerFromEnv({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: `${fake.url}/v1`, TAPE_MAX_REPLY_BYTES: "4096" })
      const tape = await withPipeline(
        llm,
        (p) =>
          Effect.gen(function* () {
            const session = yield* p.create()
            for (let i = 0; i < 20; i++) {
              yield* ask(p, session, `Question ${i}: ${words(40, "q")}`)
              if ((yield* p.tape(session)).some((e) => e.type === "MemoryTrimmed")) break
            }
            return yield* p.tape(session)
          }),
        { contextTokens: BUDGET }
      )
      expect(fake.requests.some((r: SeenRequest) => isSummary(r.body))).toBe(true)
      expect(tape.some((e) => e.type === "MemoryCompacted")).toBe(false)
      const trimmed = tape.find((e) => e.type === "MemoryTrimmed")
      expect(trimmed?.type === "MemoryTrimmed" ? trimmed.reason : "").toContain("larger than 4096 bytes")
      expect(tape.at(-1)?.type).toBe("TurnCompleted")
    } finally {
      fake.stop()
    }
  }, 120_000)
})
