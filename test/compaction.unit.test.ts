// The context budget (issue 14, DESIGN.md §2 rule 11): decide's compaction before a turn, its three endings (summary,
// trim on failure, trim on interrupt or restart), the queue during it, the strict fold of copied compactions, and a
// seeded property: over random long sessions the prompt of every turn stays under the budget and no tool call is ever
// parted from its result.
import { describe, expect, test } from "bun:test"
import { Either } from "effect"
import fc from "fast-check"
import { foldStrict } from "../src/domain/admissible.ts"
import type { Input } from "../src/domain/Command.ts"
import { type DecideContext, decide } from "../src/domain/decide.ts"
import type { Actor, Envelope } from "../src/domain/Event.ts"
import { memorySnapshot, memoryTokens, promptFor } from "../src/domain/projections/memory.ts"
import type { LlmMemory } from "../src/domain/projections/memoryTypes.ts"
import { evolve, initialState, type SessionState } from "../src/domain/state.ts"
import { MESSAGE_OVERHEAD, tokensOf } from "../src/domain/tokens.ts"
import { testContext } from "./support/context.ts"

const alice = "user:alice"
const BUDGET = 2_000
const ctx: DecideContext = { ...testContext, contextTokens: () => BUDGET }

/** A session driven through the real decide and evolve, as the writer does (no store, no runners). */
class Session {
  readonly tape: Array<Envelope> = []
  readonly state: SessionState = initialState("s")
  constructor(private readonly context: DecideContext = ctx) {
    this.apply({ type: "create" }, "system")
  }
  /** Decides one input; appends and folds its events; answers them (a rejection throws, or is returned with `orReject`). */
  apply(input: Input, by: Actor = alice): ReadonlyArray<Envelope> {
    const d = decide(this.state, input, by, this.context)
    if (Either.isLeft(d)) throw new Error(`${input.type} rejected: ${d.left.code} ${d.left.message}`)
    const events = d.right.map((draft, i): Envelope => ({ ...draft, session: "s", seq: this.state.head + i + 1, at: this.state.head + i + 1 }) as Envelope)
    for (const e of events) {
      this.tape.push(e)
      evolve(this.state, e)
    }
    return events
  }
  rejection(input: Input, by: Actor = alice): string | null {
    const d = decide(this.state, input, by, this.context)
    return Either.isLeft(d) ? d.left.code : null
  }
  get streaming(): string | null {
    return this.state.interrupts.streaming
  }
  get compacting(): number | null {
    return this.state.interrupts.compacting?.upToSeq ?? null
  }
  /** The running turn replies `text` and completes. */
  reply(text: string): ReadonlyArray<Envelope> {
    const turnId = this.streaming
    if (turnId === null) throw new Error("no turn streams")
    this.apply({ type: "model_delta", turnId, text }, "model")
    return this.apply({ type: "model_completed", turnId }, "model")
  }
}

const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 7} word${i}`).join(" ")

/** A session with `n` exchanges of about 150 tokens each, idle. */
const longSession = (n: number): Session => {
  const s = new Session({ ...testContext })
  for (let i = 0; i < n; i++) {
    s.apply({ type: "send_message", text: `question ${i}: ${words(30, "q")}` })
    s.reply(`answer ${i}: ${words(30, "a")}`)
  }
  return s
}

/** The prompt's tokens counted afresh from the memory snapshot (independently of the projection's own counter). */
const promptTokens = (memory: LlmMemory): number =>
  memory.messages.reduce(
    (n, m) =>
      n + MESSAGE_OVERHEAD + tokensOf(m.text) +
      (m.role === "assistant" ? m.toolCalls.reduce((k, c) => k + MESSAGE_OVERHEAD + tokensOf(c.tool) + tokensOf(c.callId) + tokensOf(JSON.stringify(c.args)) + tokensOf(c.result), 0) : 0),
    0
  )

const withBudget = (s: Session): Session => Object.assign(Object.create(Session.prototype) as Session, s, { context: ctx })

describe("a turn whose prompt would pass 80 % of the budget starts with a compaction", () => {
  test("under the threshold the turn starts; over it, CompactionStarted replaces TurnStarted and cuts before a user message", () => {
    const small = withBudget(longSession(2))
    expect(small.apply({ type: "send_message", text: "next" }).map((e) => e.type)).toEqual(["UserMessageAdded", "TurnStarted"])

    const s = withBudget(longSession(12))
    const before = memoryTokens(s.state.memory)
    expect(before).toBeGreaterThan(BUDGET * 0.8)
    const events = s.apply({ type: "send_message", text: "next question" })
    expect(events.map((e) => e.type)).toEqual(["UserMessageAdded", "CompactionStarted"])
    const started = events[1]!
    if (started.type !== "CompactionStarted") throw new Error("unreachable")
    expect(started.tokensBefore).toBeGreaterThan(before)
    // The cut is a whole-turn boundary: right before a user message, which stays.
    const kept = s.state.memory.messages.find((m) => m.seq === started.upToSeq + 1)
    expect(kept?.role).toBe("user")
    expect(s.streaming).toBeNull()
    expect(s.state.interrupts.compacting?.upToSeq).toBe(started.upToSeq)
  })

  test("the summary replaces everything up to upToSeq (a marked note), then the turn starts under the budget", () => {
    const s = withBudget(longSession(12))
    s.apply({ type: "send_message", text: "next question" })
    const upToSeq = s.compacting!
    const events = s.apply({ type: "model_summary", upToSeq, summary: "The user asked twelve questions; each was answered." }, "model")
    expect(events.map((e) => e.type)).toEqual(["MemoryCompacted", "TurnStarted"])
    const compacted = events[0]!
    if (compacted.type !== "MemoryCompacted") throw new Error("unreachable")
    expect(compacted.tokensAfter).toBeLessThan(BUDGET * 0.4)
    // The memory's size right after the compaction: what it is now, less the new turn's empty reply.
    expect(compacted.tokensAfter).toBe(memoryTokens(s.state.memory) - MESSAGE_OVERHEAD)
    const prompt = promptFor(s.state, s.streaming!)
    expect(prompt.messages[0]).toMatchObject({ role: "summary", trimmed: false, upToSeq })
    expect(prompt.messages[0]!.text).toStartWith("[Summary of ")
    expect(prompt.messages[0]!.text).toContain("not instructions")
    expect(prompt.messages[0]!.text).toEndWith("The user asked twelve questions; each was answered.")
    expect(prompt.messages.at(-1)).toEqual({ role: "user", text: "next question" })
    expect(promptTokens(prompt)).toBeLessThan(BUDGET * 0.8)
    // The conversation keeps every message, and a marker with the summary.
    const items = s.state.messages.items
    expect(items.filter((i) => i.kind === "user")).toHaveLength(13)
    expect(items.find((i) => i.kind === "compaction")).toMatchObject({ status: "compacted", upToSeq, summary: "The user asked twelve questions; each was answered." })
  })

  test("a failed summary trims instead: [N earlier messages omitted], and the turn still starts", () => {
    const s = withBudget(longSession(12))
    s.apply({ type: "send_message", text: "next question" })
    const upToSeq = s.compacting!
    const covered = s.state.memory.messages.filter((m) => m.seq <= upToSeq).length
    const events = s.apply({ type: "model_summary_failed", upToSeq, error: "provider error 500" }, "model")
    expect(events.map((e) => e.type)).toEqual(["MemoryTrimmed", "TurnStarted"])
    expect(events[0]).toMatchObject({ type: "MemoryTrimmed", upToSeq, omitted: covered, by: "system" })
    expect(memorySnapshot(s.state).messages[0]).toMatchObject({ role: "summary", text: `[${covered} earlier messages omitted]`, trimmed: true })
    // An empty summary is no summary.
    const t = withBudget(longSession(12))
    t.apply({ type: "send_message", text: "again" })
    expect(t.apply({ type: "model_summary", upToSeq: t.compacting!, summary: "  " }, "model").map((e) => e.type)).toEqual(["MemoryTrimmed", "TurnStarted"])
  })

  test("a summary for a compaction that is not running is dropped (stale)", () => {
    const s = withBudget(longSession(12))
    expect(s.rejection({ type: "model_summary", upToSeq: 3, summary: "x" }, "model")).toBe("stale")
    s.apply({ type: "send_message", text: "next question" })
    expect(s.rejection({ type: "model_summary", upToSeq: s.compacting! + 1, summary: "x" }, "model")).toBe("stale")
  })

  test("messages sent during a compaction are queued, and enter with the turn after it", () => {
    const s = withBudget(longSession(12))
    s.apply({ type: "send_message", text: "next question" })
    expect(s.apply({ type: "send_message", text: "and one more" }).map((e) => e.type)).toEqual(["UserMessageQueued"])
    const upToSeq = s.compacting!
    expect(s.apply({ type: "model_summary", upToSeq, summary: "earlier talk" }, "model").map((e) => e.type)).toEqual([
      "MemoryCompacted",
      "QueuedMessagesFlushed",
      "TurnStarted"
    ])
    expect(promptFor(s.state, s.streaming!).messages.slice(-2)).toEqual([
      { role: "user", text: "next question" },
      { role: "user", text: "and one more" }
    ])
  })

  test("an interrupt during a compaction trims (the session stays usable); queued messages then start the turn", () => {
    const s = withBudget(longSession(12))
    s.apply({ type: "send_message", text: "next question" })
    const upToSeq = s.compacting!
    const events = s.apply({ type: "interrupt", reason: "too slow" })
    expect(events.map((e) => e.type)).toEqual(["InterruptRequested", "MemoryTrimmed"])
    expect(events[1]).toMatchObject({ upToSeq, by: alice, reason: "interrupted: too slow" })
    expect(s.compacting).toBeNull()
    expect(s.rejection({ type: "model_summary", upToSeq, summary: "late" }, "model")).toBe("stale")
    expect(s.apply({ type: "send_message", text: "go on" }).map((e) => e.type)).toEqual(["UserMessageAdded", "TurnStarted"])

    const q = withBudget(longSession(12))
    q.apply({ type: "send_message", text: "next question" })
    q.apply({ type: "send_message", text: "queued meanwhile" })
    expect(q.apply({ type: "interrupt" }).map((e) => e.type)).toEqual(["InterruptRequested", "MemoryTrimmed", "QueuedMessagesFlushed", "TurnStarted"])
  })

  test("a restart mid-compaction trims and starts the turn it was for; a copy's end only trims", () => {
    const s = withBudget(longSession(12))
    s.apply({ type: "send_message", text: "next question" })
    expect(s.apply({ type: "close_open", reason: "restart", approved: "keep", settle: true }, "system").map((e) => e.type)).toEqual(["MemoryTrimmed", "TurnStarted"])
    const f = withBudget(longSession(12))
    f.apply({ type: "send_message", text: "next question" })
    expect(f.apply({ type: "close_open", reason: "fork", approved: "reopen", settle: false }, "system").map((e) => e.type)).toEqual(["MemoryTrimmed"])
  })

  test("without a budget the memory is never compacted", () => {
    const s = longSession(30)
    expect(s.apply({ type: "send_message", text: "next" }).map((e) => e.type)).toEqual(["UserMessageAdded", "TurnStarted"])
  })

  test("the provider's reported inputTokens anchor the memory's size", () => {
    const s = new Session()
    s.apply({ type: "send_message", text: "hi" })
    const turnId = s.streaming!
    s.apply({ type: "model_delta", turnId, text: "hello there" }, "model")
    s.apply({ type: "model_completed", turnId, usage: { inputTokens: 1_500, outputTokens: 3 } }, "model")
    // 1,500 for the prompt as the provider counted it (system prompt included), plus the reply that came after.
    expect(memoryTokens(s.state.memory)).toBe(1_500 + MESSAGE_OVERHEAD + tokensOf("hello there"))
    // Over 80 % by the provider's count: the next turn compacts, though the estimate alone is small.
    s.apply({ type: "send_message", text: "again" })
    s.reply("ok")
    s.apply({ type: "send_message", text: "more" })
    const last = s.streaming
    if (last !== null) s.apply({ type: "model_completed", turnId: last, usage: { inputTokens: 1_700, outputTokens: 1 } }, "model")
    expect(s.apply({ type: "send_message", text: "and more" }).map((e) => e.type)).toEqual(["UserMessageAdded", "CompactionStarted"])
  })
})

describe("long tool outputs age out of the memory", () => {
  test("an output over 2,000 characters keeps its head and tail, marked, once its turn is 3 turns old", () => {
    const s = new Session()
    s.apply({ type: "send_message", text: "read it" })
    const turnId = s.streaming!
    const [req, ap] = s.apply({ type: "model_tool_call", turnId, tool: "read_file", args: { path: "big.txt" } }, "model")
    expect(ap?.type).toBe("ToolCallApproved")
    if (req?.type !== "ToolCallRequested") throw new Error("no call")
    s.apply({ type: "model_completed", turnId }, "model")
    s.apply({ type: "tool_started", callId: req.callId }, "tool")
    const output = `HEAD${"x".repeat(10_000)}TAIL`
    s.apply({ type: "tool_succeeded", callId: req.callId, output }, "tool")
    s.reply("read")
    const resultOf = () => memorySnapshot(s.state).messages.flatMap((m) => (m.role === "assistant" ? m.toolCalls : []))[0]!.result
    expect(resultOf()).toBe(output)
    // Model turns: the one that called, the one that answered with the result, then q0's: still within the last 3.
    s.apply({ type: "send_message", text: "q0" })
    s.reply("a")
    expect(resultOf()).toBe(output)
    s.apply({ type: "send_message", text: "q1" })
    const aged = resultOf()
    expect(aged.length).toBeLessThan(1_500)
    expect(aged).toStartWith("HEAD")
    expect(aged).toEndWith("TAIL")
    expect(aged).toContain("characters of this older tool output are left out of the memory")
    // The UI view keeps the whole output.
    expect(s.state.commands.calls.get(req.callId)?.output).toBe(output)
  })
})

describe("a copied tape's compactions are checked by the strict fold", () => {
  const compacted = (): ReadonlyArray<Envelope> => {
    const s = withBudget(longSession(12))
    s.apply({ type: "send_message", text: "next question" })
    s.apply({ type: "model_summary", upToSeq: s.compacting!, summary: "earlier talk" }, "model")
    s.reply("fine")
    return s.tape
  }
  const check = (tape: ReadonlyArray<Envelope>) => foldStrict("copy", tape, { checkTool: testContext.checkTool })

  test("a tape the writer made is admissible", () => {
    expect("state" in check(compacted())).toBe(true)
  })

  test("a cut inside a turn, at a later seq, a summary with no compaction, or a wrong omitted count is refused", () => {
    const tape = compacted()
    const at = tape.findIndex((e) => e.type === "CompactionStarted")
    const start = tape[at]!
    if (start.type !== "CompactionStarted") throw new Error("unreachable")
    const refusal = (t: ReadonlyArray<Envelope>) => {
      const r = check(t)
      return "refused" in r ? r.refused.reason : null
    }
    // Inside a turn (after its TurnStarted and first delta): no message starts right after it.
    const inside = tape.map((e, i) => (i === at ? { ...start, upToSeq: start.upToSeq + 3 } : e))
    expect(refusal(inside)).toContain("not right before a message that stays")
    expect(refusal(tape.map((e, i) => (i === at ? { ...start, upToSeq: start.seq } : e)))).toContain("must be an earlier seq")
    const noStart = tape.filter((_, i) => i !== at).map((e, i) => ({ ...e, seq: i + 1 }))
    expect(refusal(noStart)).toContain("no compaction up to seq")
    const trimmed = tape.map((e) => (e.type === "MemoryCompacted" ? { ...e, type: "MemoryTrimmed" as const, omitted: 1, by: "system", summary: undefined } : e))
    expect(refusal(trimmed as ReadonlyArray<Envelope>)).toContain("omitted should be")
    const forged = tape.map((e) => (e.type === "MemoryCompacted" ? { ...e, by: "user:mallory" } : e))
    expect(refusal(forged)).toContain("cannot be caused by")
  })
})

describe("property: the memory never passes the budget, and a call is never parted from its result", () => {
  const Step = fc.record({
    userWords: fc.integer({ min: 1, max: 60 }),
    replyWords: fc.integer({ min: 0, max: 60 }),
    calls: fc.integer({ min: 0, max: 2 }),
    outputChars: fc.integer({ min: 0, max: 3_000 }),
    summary: fc.constantFrom("ok", "fail", "empty", "long", "interrupt"),
    queued: fc.boolean()
  })

  test("seeded random long sessions (compactions summarised, failed, interrupted)", () => {
    fc.assert(
      fc.property(fc.array(Step, { minLength: 20, maxLength: 60 }), (steps) => {
        const s = new Session()
        let n = 0
        /** Every turn's prompt: under the budget, and each call in it with its result, as the commands reducer has it. */
        const checkTurn = () => {
          const turnId = s.streaming
          if (turnId === null) return
          const prompt = promptFor(s.state, turnId)
          expect(promptTokens(prompt)).toBeLessThanOrEqual(BUDGET)
          for (const m of prompt.messages) {
            if (m.role !== "assistant") continue
            const calls = s.state.commands.byTurn.get(m.turnId) ?? []
            expect(m.toolCalls.map((c) => c.callId)).toEqual([...calls])
            for (const c of m.toolCalls) expect(c.result).not.toMatch(/^\[(Running|Approved, not started|Not run: awaiting)/)
          }
        }
        const settleCompaction = (step: typeof Step extends fc.Arbitrary<infer T> ? T : never) => {
          const upToSeq = s.compacting
          if (upToSeq === null) return
          if (step.queued) s.apply({ type: "send_message", text: `meanwhile ${n}` })
          if (step.summary === "interrupt") {
            s.apply({ type: "interrupt" })
            if (s.streaming === null && s.compacting === null) s.apply({ type: "send_message", text: `after interrupt ${n}` })
            settleCompaction(step)
            return
          }
          const summary = step.summary === "long" ? words(2_000, "s") : step.summary === "empty" ? "" : `summary ${n}`
          if (step.summary === "fail") s.apply({ type: "model_summary_failed", upToSeq, error: "provider error 500" }, "model")
          else s.apply({ type: "model_summary", upToSeq, summary }, "model")
        }
        for (const step of steps) {
          n++
          s.apply({ type: "send_message", text: `user ${n}: ${words(step.userWords, "u")}` })
          settleCompaction(step)
          for (let loop = 0; loop < 3 && s.streaming !== null; loop++) {
            checkTurn()
            const turnId = s.streaming
            s.apply({ type: "model_delta", turnId, text: words(step.replyWords, "r") }, "model")
            const calls = loop === 0 ? step.calls : 0
            const ids: Array<string> = []
            for (let c = 0; c < calls; c++) {
              const ev = s.apply({ type: "model_tool_call", turnId, tool: "read_file", args: { path: `f${c}` } }, "model")
              if (ev[0]?.type === "ToolCallRequested") ids.push(ev[0].callId)
            }
            s.apply({ type: "model_completed", turnId }, "model")
            for (const callId of ids) {
              s.apply({ type: "tool_started", callId }, "tool")
              s.apply({ type: "tool_succeeded", callId, output: "o".repeat(step.outputChars) }, "tool")
            }
            settleCompaction(step)
          }
          if (s.streaming !== null) s.apply({ type: "model_completed", turnId: s.streaming }, "model")
        }
        // Every compaction ended, and the tape the writer made folds strictly (an import of it is accepted).
        expect(s.compacting).toBeNull()
        expect("state" in foldStrict("copy", s.tape, { checkTool: testContext.checkTool })).toBe(true)
      }),
      { seed: 1414, numRuns: 40 }
    )
  })
})

describe("the token estimate is bounded whatever the text", () => {
  test("a 16 MB run of one character (quadratic for the tokenizer in one piece) is counted in pieces, near its true count", () => {
    // The tokenizer's own count of 80,000 × "w" is 40,000; in pieces it is the same, and 16 MB is counted in proportion.
    expect(tokensOf("w".repeat(80_000))).toBe(40_000)
    expect(tokensOf("w".repeat(16_000_000))).toBe(8_000_000)
    expect(tokensOf("special <|endoftext|> text")).toBeGreaterThan(3)
  })
})
