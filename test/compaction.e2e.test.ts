// Long sessions over real HTTP (issue 14): the scripted model plays 200 turns through the whole pipeline (writer, Bus,
// LLM runner, the in-process OpenAI-compatible endpoint, which measures every request it receives); with the scripted
// model's 8,000-token budget every prompt stays under it, compactions are summarised (the offline summary, or a
// scripted one), a failing summary trims, an interrupt during a compaction trims, and messages queued meanwhile run.
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { fold } from "../src/domain/state.ts"
import type { EndpointEvent, Script } from "../src/llm/offline.ts"
import { type Pipeline, withPipeline } from "../src/testing.ts"
import { ask } from "./support/compaction.ts"

const BUDGET = 8_000
const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 11}w${i}`).join(" ")
const turnsOf = (n: number): Script["turns"] => Array.from({ length: n }, (_, i) => ({ text: `Answer ${i}: ${words(40, "a")}`, chunkChars: 512, delayMs: 0 }))

const count = (tape: ReadonlyArray<Envelope>, type: Envelope["type"]) => tape.filter((e) => e.type === type).length
const idleAfter = (n: number) => (tape: ReadonlyArray<Envelope>) => count(tape, "TurnCompleted") >= n && fold("t", tape).interrupts.streaming === null
type Request = Extract<EndpointEvent, { type: "request" }>
const requests = (p: Pipeline): ReadonlyArray<Request> => p.endpoint.events().filter((e): e is Request => e.type === "request")

/** Sends `n` messages one after the other, each once the session is idle again. */
const talk = (p: Pipeline, session: string, n: number, from = 0) =>
  Effect.gen(function* () {
    for (let i = from; i < from + n; i++) {
      yield* ask(p, session, `Question ${i}: ${words(40, "q")}`)
    }
    return yield* p.tape(session)
  })

describe("a 200-turn session with the scripted model keeps every request under the budget", () => {
  test("every prompt the endpoint receives stays under 8,000 tokens; compactions are summarised; nothing is lost from the UI", async () => {
    const result = await withPipeline({ turns: turnsOf(200) }, (p) =>
      Effect.gen(function* () {
        const session = yield* p.create()
        const tape = yield* talk(p, session, 200)
        return { tape, requests: requests(p) }
      })
    )
    const turns = result.requests.filter((r) => r.task === "turn")
    const summaries = result.requests.filter((r) => r.task === "summary")
    expect(turns).toHaveLength(200)
    // The endpoint's own measure of what it received, by a real tokenizer: under the budget, every time.
    for (const r of turns) expect(r.promptTokens).toBeLessThan(BUDGET)
    for (const r of summaries) expect(r.promptTokens).toBeLessThan(BUDGET)
    // Without compaction the prompt would have grown to ~40,000 tokens: it was compacted, several times, and stays flat.
    expect(count(result.tape, "MemoryCompacted")).toBeGreaterThanOrEqual(3)
    expect(count(result.tape, "MemoryTrimmed")).toBe(0)
    expect(summaries.length).toBe(count(result.tape, "CompactionStarted"))
    const late = turns.slice(100).map((r) => r.promptTokens)
    expect(Math.max(...late)).toBeLessThan(BUDGET * 0.85)
    // The summary the model saw is on the tape; the UI keeps all 400 messages and a marker per compaction.
    const state = fold("replay", result.tape)
    expect(state.messages.items.filter((i) => i.kind === "user")).toHaveLength(200)
    expect(state.messages.items.filter((i) => i.kind === "assistant")).toHaveLength(200)
    const markers = state.messages.items.filter((i) => i.kind === "compaction")
    expect(markers.length).toBe(count(result.tape, "MemoryCompacted"))
    expect(markers.every((m) => m.status === "compacted" && (m.summary ?? "").includes("Earlier in this conversation"))).toBe(true)
  }, 240_000)
})

describe("compaction endings over the pipeline", () => {
  const compacting = (tape: ReadonlyArray<Envelope>) => fold("t", tape).interrupts.compacting !== null

  test("a scripted summary is used; a failing one trims ([N earlier messages omitted]) and the session goes on", async () => {
    const script: Script = { turns: turnsOf(60), summaries: [{ text: "SCRIPTED SUMMARY ONE" }, { fail: "summary provider down" }] }
    const tape = await withPipeline(script, (p) =>
      Effect.gen(function* () {
        const session = yield* p.create()
        return yield* talk(p, session, 60)
      })
    )
    const compacted = tape.find((e) => e.type === "MemoryCompacted")
    expect(compacted).toMatchObject({ summary: "SCRIPTED SUMMARY ONE", by: "model" })
    const trimmed = tape.find((e) => e.type === "MemoryTrimmed")
    expect(trimmed).toMatchObject({ by: "system" })
    expect(trimmed?.type === "MemoryTrimmed" ? trimmed.reason : "").toContain("summary provider down")
    expect(count(tape, "TurnCompleted")).toBe(60)
    // Right after the trim, the model's memory starts with the note in place of what was dropped.
    const state = fold("t", tape, trimmed!.seq)
    expect(state.memory.messages[0]).toMatchObject({ role: "summary", trimmed: true })
    expect(state.memory.messages[0]!.text).toMatch(/^\[\d+ earlier messages omitted\]$/)
  }, 120_000)

  test("an interrupt during a compaction trims and leaves the session usable; a message queued meanwhile runs after it", async () => {
    // The first summary is slow (a long text at 1 character per 20 ms), so the compaction is running when we act.
    const slow = { text: "x".repeat(4_000), delayMs: 20 }
    const script: Script = { turns: turnsOf(80), summaries: [slow, slow] }
    const tape = await withPipeline(script, (p) =>
      Effect.gen(function* () {
        const session = yield* p.create()
        let i = 0
        for (; ; i++) {
          yield* p.submit(session, { type: "send_message", text: `Question ${i}: ${words(40, "q")}` })
          const t = yield* p.waitFor(session, (t) => compacting(t) || idleAfter(i + 1)(t))
          if (compacting(t)) break
        }
        // Queued while it summarises: it waits, then enters with the turn the compaction was for.
        yield* p.submit(session, { type: "send_message", text: "queued during the compaction" })
        yield* p.submit(session, { type: "interrupt", reason: "stop summarising" })
        yield* p.waitFor(session, (t) => !compacting(t) && idleAfter(i + 1)(t))
        // Still usable: the next message gets its turn.
        yield* p.submit(session, { type: "send_message", text: "after the interrupt" })
        return yield* p.waitFor(session, idleAfter(i + 2))
      })
    )
    const trimmed = tape.find((e) => e.type === "MemoryTrimmed")
    expect(trimmed).toMatchObject({ by: "user:test", reason: "interrupted: stop summarising" })
    expect(count(tape, "MemoryCompacted")).toBe(0)
    const flushed = tape.findIndex((e) => e.type === "QueuedMessagesFlushed")
    expect(flushed).toBeGreaterThan(tape.indexOf(trimmed!))
    expect(tape[flushed + 1]?.type).toBe("TurnStarted")
  }, 120_000)
})
