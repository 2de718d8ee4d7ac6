// The runners end to end: a scripted model through the real BAML client and the in-process endpoint, the real
// SessionWriter, LlmRunner, ToolRunner and tool catalogue. Each case asserts on the tape and its projections; the
// tapes of the main cases are committed fixtures (RECORD_TAPES=1 re-records them) whose fold must match the live run.
import { describe, expect, test } from "bun:test"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { Effect, Either } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { memorySnapshot, promptFor } from "../src/domain/projections/memory.ts"
import type { LlmMemory } from "../src/domain/projections/memoryTypes.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import { uiView } from "../src/domain/projections/ui.ts"
import { fold } from "../src/domain/state.ts"
import { formatTape, parseTape } from "../src/domain/tapeFile.ts"
import type { EndpointEvent, Script } from "../src/llm/offline.ts"
import { type Pipeline, withPipeline } from "./support/pipeline.ts"
import { itemsOf, T0, tapePath } from "./support/tapes.ts"

const RECORD = process.env.RECORD_TAPES === "1"

// ---- reading tapes ----

type EventOf<T extends Envelope["type"]> = Extract<Envelope, { readonly type: T }>

const ofType = <T extends Envelope["type"]>(tape: ReadonlyArray<Envelope>, type: T): Array<EventOf<T>> =>
  tape.filter((e): e is EventOf<T> => e.type === type)

const count = (type: Envelope["type"]) => (tape: ReadonlyArray<Envelope>) => ofType(tape, type).length
const atLeast = (type: Envelope["type"], n: number) => (tape: ReadonlyArray<Envelope>) => count(type)(tape) >= n

const only = <A>(xs: ReadonlyArray<A>, what: string): A => {
  if (xs.length !== 1) throw new Error(`expected exactly one ${what}, got ${xs.length}`)
  return xs[0]!
}

const textOf = (tape: ReadonlyArray<Envelope>, turnId: string) =>
  ofType(tape, "AssistantDelta").filter((d) => d.turnId === turnId).map((d) => d.text)

const promptOf = (tape: ReadonlyArray<Envelope>, turnId: string): LlmMemory => promptFor(fold("live", tape), turnId)

const resultsIn = (memory: LlmMemory): Array<string> =>
  memory.messages.flatMap((m) => (m.role === "assistant" ? m.toolCalls.map((c) => c.result) : []))

const requestsFor = (events: ReadonlyArray<EndpointEvent>, turnKey: string) =>
  events.flatMap((e) => (e.type === "request" && e.turnKey === turnKey ? [e] : []))

// ---- projections, as plain data comparable across runs ----

/**
 * Every projection of a tape, with what legitimately differs between two recordings of the same script removed:
 * the session id, `at`, and seq-derived ids and head (BAML polls its stream, so the number of deltas varies).
 * Ids are renumbered by first appearance, so their pairing (which result belongs to which call) still counts.
 */
const projectionsOf = (tape: ReadonlyArray<Envelope>): unknown => {
  const s = fold("normalised", tape.map((e) => ({ ...e, session: "normalised" })))
  const ui = uiView(s)
  const { session: _s, createdAt: _c, updatedAt: _u, head: _h, ...summary } = summaryView(s)
  const plain = {
    ui: {
      title: ui.title,
      phase: ui.phase,
      items: itemsOf(ui),
      queue: ui.queue.map((q) => q.text),
      pendingApprovals: ui.pendingApprovals.map((c) => c.callId),
      actions: ui.actions
    },
    memory: memorySnapshot(s),
    summary
  }
  const ids = new Map<string, string>()
  const json = JSON.stringify(plain).replace(/\b(turn|call|msg)-\d+\b/g, (id, kind: string) => {
    const known = ids.get(id)
    if (known !== undefined) return known
    const next = `${kind}#${[...ids.keys()].filter((k) => k.startsWith(`${kind}-`)).length + 1}`
    ids.set(id, next)
    return next
  })
  return JSON.parse(json)
}

/**
 * With RECORD_TAPES=1, saves the live tape as `test/tapes/<name>.jsonl` (session renamed to the fixture's name, `at`
 * relative to T0). Always: the committed fixture, folded with no model, has the same projections as the live tape.
 */
const checkFixture = (name: string, live: ReadonlyArray<Envelope>) => {
  const first = live[0]
  if (first === undefined) throw new Error("empty live tape")
  if (RECORD) {
    writeFileSync(tapePath(name), formatTape(live.map((e) => ({ ...e, session: name, at: T0 + (e.at - first.at) }))))
  }
  expect({ fixture: name, exists: existsSync(tapePath(name)) }).toEqual({ fixture: name, exists: true })
  const parsed = parseTape(readFileSync(tapePath(name), "utf8"))
  if (Either.isLeft(parsed)) throw new Error(`fixture ${name}: ${parsed.left.message}`)
  expect(projectionsOf(parsed.right)).toEqual(projectionsOf(live))
}

const run = <A>(script: Script, body: (p: Pipeline) => Effect.Effect<A, unknown>) => withPipeline(script, body)

/** Creates a session and sends its first message. */
const start = (p: Pipeline, text: string) =>
  Effect.gen(function* () {
    const session = yield* p.create()
    yield* p.submit(session, { type: "send_message", text })
    return session
  })

// ---- the cases ----

describe("runners: scripted model end to end", () => {
  test("a. a reply streamed in chunks: the deltas concatenate to the script's text, then TurnCompleted", async () => {
    const text = "Streaming is the point: every chunk becomes an AssistantDelta on the tape, folded by every client as it comes."
    const tape = await run({ turns: [{ text, chunkChars: 3, delayMs: 6 }] }, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Tell me about streaming")
        return yield* p.waitFor(session, atLeast("TurnCompleted", 1))
      })
    )
    const turn = only(ofType(tape, "TurnStarted"), "TurnStarted")
    const deltas = textOf(tape, turn.turnId)
    expect(deltas.length).toBeGreaterThanOrEqual(2)
    expect(deltas.every((d) => d.length > 0)).toBe(true)
    expect(deltas.join("")).toBe(text)
    const completed = only(ofType(tape, "TurnCompleted"), "TurnCompleted")
    expect(completed.turnId).toBe(turn.turnId)
    expect(tape.at(-1)?.type).toBe("TurnCompleted")
    expect(ofType(tape, "AssistantDelta").every((d) => d.seq < completed.seq && d.by === "model")).toBe(true)

    const s = fold("live", tape)
    expect(itemsOf(uiView(s))).toEqual([
      { user: "Tell me about streaming", queued: false },
      { assistant: text, status: "completed", note: null }
    ])
    expect(uiView(s).phase).toBe("idle")
    expect(memorySnapshot(s).messages).toEqual([
      { role: "user", text: "Tell me about streaming" },
      { role: "assistant", turnId: turn.turnId, text, toolCalls: [] }
    ])
    expect(summaryView(s)).toMatchObject({ messages: 1, turns: 1, toolCalls: 0, phase: "idle", pendingApprovals: 0 })
    checkFixture("scripted-chunked-reply", tape)
  })

  test("b. tool call → approve → executed (6*7 = 42) → the next turn's prompt holds the result → the answer", async () => {
    const script: Script = {
      turns: [
        { text: "Let me compute that.", toolCalls: [{ tool: "eval", args: { code: "6*7" }, description: "multiply" }] },
        { text: "The answer is 42." }
      ]
    }
    const tape = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "What is 6 times 7?")
        const first = yield* p.waitFor(session, (t) => count("ToolCallRequested")(t) === 1 && count("TurnCompleted")(t) === 1)
        const call = only(ofType(first, "ToolCallRequested"), "ToolCallRequested")
        expect(fold("live", first).commands.pending.has(call.callId)).toBe(true)
        yield* p.submit(session, { type: "approve", callId: call.callId })
        return yield* p.waitFor(session, atLeast("TurnCompleted", 2))
      })
    )
    const [t1, t2] = ofType(tape, "TurnStarted")
    if (t1 === undefined || t2 === undefined) throw new Error("expected two turns")
    const call = only(ofType(tape, "ToolCallRequested"), "ToolCallRequested")
    expect(call).toMatchObject({ turnId: t1.turnId, tool: "eval", args: { code: "6*7" }, description: "multiply" })
    const approved = only(ofType(tape, "ToolCallApproved"), "ToolCallApproved")
    const started = only(ofType(tape, "ToolExecutionStarted"), "ToolExecutionStarted")
    const succeeded = only(ofType(tape, "ToolExecutionSucceeded"), "ToolExecutionSucceeded")
    expect(approved).toMatchObject({ callId: call.callId, by: "user:test" })
    expect(started).toMatchObject({ callId: call.callId, by: "tool" })
    expect(succeeded.callId).toBe(call.callId)
    expect(succeeded.output).toContain("42")
    expect(call.seq < approved.seq && approved.seq < started.seq && started.seq < succeeded.seq && succeeded.seq < t2.seq).toBe(true)

    const prompt = promptOf(tape, t2.turnId)
    expect(prompt.messages.at(-1)).toMatchObject({ role: "assistant", turnId: t1.turnId, text: "Let me compute that." })
    expect(resultsIn(prompt)).toHaveLength(1)
    expect(resultsIn(prompt)[0]).toContain("42")
    expect(textOf(tape, t2.turnId).join("")).toBe("The answer is 42.")
    expect(tape.at(-1)).toMatchObject({ type: "TurnCompleted", turnId: t2.turnId })

    const s = fold("live", tape)
    const items = itemsOf(uiView(s))
    expect(items.map((i) => ("user" in i ? "user" : "assistant" in i ? `assistant:${i.status}` : "call" in i ? `call:${i.status}` : "loop"))).toEqual([
      "user",
      "assistant:completed",
      "call:succeeded",
      "assistant:completed"
    ])
    expect(uiView(s).phase).toBe("idle")
    expect(summaryView(s)).toMatchObject({ messages: 1, turns: 2, toolCalls: 1, phase: "idle", pendingApprovals: 0 })
    checkFixture("scripted-tool-approve", tape)
  })

  test("c. two tool calls in one reply: both pending, both approved, one loop back", async () => {
    const script: Script = {
      turns: [
        { text: "Two things.", toolCalls: [{ tool: "eval", args: { code: "1+1" } }, { tool: "eval", args: { code: "'a'.repeat(3)" } }] },
        { text: "Both done." }
      ]
    }
    const tape = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Do two things")
        const first = yield* p.waitFor(session, (t) => count("ToolCallRequested")(t) === 2 && count("TurnCompleted")(t) === 1)
        const calls = ofType(first, "ToolCallRequested")
        const s = fold("live", first)
        expect(uiView(s).phase).toBe("awaiting_approval")
        expect(uiView(s).pendingApprovals.map((c) => c.callId)).toEqual(calls.map((c) => c.callId))
        for (const c of calls) yield* p.submit(session, { type: "approve", callId: c.callId })
        return yield* p.waitFor(session, atLeast("TurnCompleted", 2))
      })
    )
    const turns = ofType(tape, "TurnStarted")
    expect(turns).toHaveLength(2)
    const [t1, t2] = turns as [EventOf<"TurnStarted">, EventOf<"TurnStarted">]
    const calls = ofType(tape, "ToolCallRequested")
    expect(calls.map((c) => c.args)).toEqual([{ code: "1+1" }, { code: "'a'.repeat(3)" }])
    expect(calls.every((c) => c.turnId === t1.turnId)).toBe(true)
    const outputs = ofType(tape, "ToolExecutionSucceeded")
    expect(outputs.map((o) => o.callId).sort()).toEqual(calls.map((c) => c.callId).sort())
    // The loop back waits for both results.
    expect(outputs.every((o) => o.seq < t2.seq)).toBe(true)
    const results = resultsIn(promptOf(tape, t2.turnId))
    expect(results).toHaveLength(2)
    expect(results[0]).toContain("2")
    expect(results[1]).toContain("aaa")
    expect(textOf(tape, t2.turnId).join("")).toBe("Both done.")
    expect(summaryView(fold("live", tape))).toMatchObject({ turns: 2, toolCalls: 2, phase: "idle", pendingApprovals: 0 })
    checkFixture("scripted-two-tools", tape)
  })

  test("d. reject with a reason: the next turn's prompt carries the reason", async () => {
    const reason = "please do not run code on my machine"
    const script: Script = {
      turns: [{ text: "I will run this.", toolCalls: [{ tool: "eval", args: { code: "while(true){}" } }] }, { text: "Understood, I won't." }]
    }
    const tape = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Loop forever")
        const first = yield* p.waitFor(session, (t) => count("ToolCallRequested")(t) === 1 && count("TurnCompleted")(t) === 1)
        const call = only(ofType(first, "ToolCallRequested"), "ToolCallRequested")
        yield* p.submit(session, { type: "reject", callId: call.callId, reason })
        const done = yield* p.waitFor(session, atLeast("TurnCompleted", 2))
        const t2 = ofType(done, "TurnStarted")[1]
        if (t2 === undefined) throw new Error("no second turn")
        // The live writer's view of the prompt agrees with the fold of the tape.
        const live = yield* p.writer.inspect(session, (s) => promptFor(s, t2.turnId))
        expect(live).toEqual(promptOf(done, t2.turnId))
        return done
      })
    )
    const t2 = ofType(tape, "TurnStarted")[1]!
    const rejected = only(ofType(tape, "ToolCallRejected"), "ToolCallRejected")
    expect(rejected).toMatchObject({ reason, by: "user:test" })
    expect(ofType(tape, "ToolExecutionStarted")).toEqual([])
    expect(rejected.seq).toBeLessThan(t2.seq)
    const results = resultsIn(promptOf(tape, t2.turnId))
    expect(results).toHaveLength(1)
    expect(results[0]).toContain(reason)
    expect(textOf(tape, t2.turnId).join("")).toBe("Understood, I won't.")
    const s = fold("live", tape)
    expect(itemsOf(uiView(s)).find((i) => "call" in i)).toMatchObject({ status: "rejected", reason, decidedBy: "user:test" })
    checkFixture("scripted-reject-reason", tape)
  })

  test("e. an invalid tool call (unknown tool): ToolCallInvalid, then the loop back shows the model its error", async () => {
    const script: Script = {
      turns: [
        { text: "Cleaning up.", toolCalls: [{ tool: "delete_everything", args: { force: true } }] },
        { text: "Sorry, that tool does not exist." }
      ]
    }
    const tape = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Clean my disk")
        return yield* p.waitFor(session, atLeast("TurnCompleted", 2))
      })
    )
    const [t1, t2] = ofType(tape, "TurnStarted") as [EventOf<"TurnStarted">, EventOf<"TurnStarted">]
    const invalid = only(ofType(tape, "ToolCallInvalid"), "ToolCallInvalid")
    expect(invalid).toMatchObject({ turnId: t1.turnId, tool: "delete_everything" })
    expect(invalid.error).toContain("unknown tool")
    expect(ofType(tape, "ToolCallRequested")).toEqual([])
    expect(ofType(tape, "ToolExecutionStarted")).toEqual([])
    expect(invalid.seq).toBeLessThan(t2.seq)
    const results = resultsIn(promptOf(tape, t2.turnId))
    expect(results).toHaveLength(1)
    expect(results[0]).toContain("unknown tool")
    expect(textOf(tape, t2.turnId).join("")).toBe("Sorry, that tool does not exist.")
    expect(summaryView(fold("live", tape))).toMatchObject({ turns: 2, toolCalls: 1, phase: "idle" })
    checkFixture("scripted-invalid-call", tape)
  })

  test("f1. provider failure (HTTP 500 on every attempt): retried, TurnFailed, and the session stays usable", async () => {
    const script: Script = {
      turns: [{ fail: "the provider is overloaded", failMode: "500" }, { text: "Back again: this turn works." }]
    }
    const { tape, events } = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Hello?")
        const failed = yield* p.waitFor(session, atLeast("TurnFailed", 1))
        expect(uiView(fold("live", failed)).phase).toBe("idle")
        yield* p.submit(session, { type: "send_message", text: "Try again" })
        const tape = yield* p.waitFor(session, atLeast("TurnCompleted", 1))
        return { tape, events: p.endpoint.events() }
      })
    )
    const [t1, t2] = ofType(tape, "TurnStarted") as [EventOf<"TurnStarted">, EventOf<"TurnStarted">]
    const attempts = requestsFor(events, t1.turnId).map((r) => r.attempt)
    expect(Math.max(...attempts)).toBeGreaterThan(1)
    const failed = only(ofType(tape, "TurnFailed"), "TurnFailed")
    expect(failed.turnId).toBe(t1.turnId)
    expect(failed.error).toContain("the provider is overloaded")
    expect(failed.retryable).toBe(true)
    expect(ofType(tape, "TurnCompleted").map((c) => c.turnId)).toEqual([t2.turnId])
    expect(textOf(tape, t2.turnId).join("")).toBe("Back again: this turn works.")
    expect(requestsFor(events, t2.turnId).map((r) => r.attempt)).toEqual([1])
  })

  test("f2. provider failure (connection dropped mid-stream): TurnFailed", async () => {
    const script: Script = {
      turns: [{ text: "This reply will be cut off halfway through, every time it is tried.", fail: "dropped", failMode: "drop" }]
    }
    const { tape, events } = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Hello?")
        const tape = yield* p.waitFor(session, atLeast("TurnFailed", 1))
        return { tape, events: p.endpoint.events() }
      })
    )
    const turn = only(ofType(tape, "TurnStarted"), "TurnStarted")
    expect(only(ofType(tape, "TurnFailed"), "TurnFailed").turnId).toBe(turn.turnId)
    expect(events.some((e) => e.type === "closed" && e.turnKey === turn.turnId && e.outcome === "dropped")).toBe(true)
    expect(ofType(tape, "TurnCompleted")).toEqual([])
    expect(uiView(fold("live", tape)).phase).toBe("idle")
  })

  test("g. interrupt mid-stream: the HTTP request is aborted within 100 ms of the ack; no delta after TurnInterrupted", async () => {
    const long = "word ".repeat(200)
    const script: Script = { turns: [{ text: long, chunkChars: 2, delayMs: 15 }, { text: "Fresh start." }] }
    const { tape, ackAt, closed } = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Talk for a long time")
        const streaming = yield* p.waitFor(session, atLeast("AssistantDelta", 1))
        const turn = only(ofType(streaming, "TurnStarted"), "TurnStarted")
        yield* p.submit(session, { type: "interrupt", reason: "enough" })
        const ackAt = performance.now()
        const closed = yield* p.endpoint
          .waitFor((e): e is Extract<EndpointEvent, { type: "closed" }> => e.type === "closed" && e.turnKey === turn.turnId)
          .pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the request was never closed") }))
        // A later turn completes, so any straggling report of the interrupted one has been decided by now.
        yield* p.submit(session, { type: "send_message", text: "New topic" })
        const tape = yield* p.waitFor(session, atLeast("TurnCompleted", 1))
        return { tape, ackAt, closed }
      })
    )
    const [t1, t2] = ofType(tape, "TurnStarted") as [EventOf<"TurnStarted">, EventOf<"TurnStarted">]
    expect(closed.outcome).toBe("aborted")
    expect(closed.chunksSent).toBeLessThan(closed.chunksTotal)
    expect(closed.at - ackAt).toBeLessThan(100)
    const interrupted = only(ofType(tape, "TurnInterrupted"), "TurnInterrupted")
    expect(interrupted).toMatchObject({ turnId: t1.turnId, reason: "enough" })
    const requested = only(ofType(tape, "InterruptRequested"), "InterruptRequested")
    expect(requested.by).toBe("user:test")
    expect(ofType(tape, "AssistantDelta").filter((d) => d.turnId === t1.turnId && d.seq > interrupted.seq)).toEqual([])
    const partial = textOf(tape, t1.turnId).join("")
    expect(partial.length).toBeGreaterThan(0)
    expect(long.startsWith(partial)).toBe(true)
    expect(partial.length).toBeLessThan(long.length)
    expect(textOf(tape, t2.turnId).join("")).toBe("Fresh start.")
    const s = fold("live", tape)
    expect(itemsOf(uiView(s))[1]).toMatchObject({ assistant: partial, status: "interrupted" })
  })

  test("h. a message sent during a reply is queued, then flushed right before the next TurnStarted", async () => {
    const script: Script = {
      turns: [{ text: "A fairly long story about a cat who sat on a mat, told slowly.", chunkChars: 2, delayMs: 10 }, { text: "Short and funny: the cat sat." }]
    }
    const tape = await run(script, (p) =>
      Effect.gen(function* () {
        const session = yield* start(p, "Tell me a story")
        yield* p.waitFor(session, atLeast("AssistantDelta", 1))
        yield* p.submit(session, { type: "send_message", text: "make it short and funny" })
        const queued = yield* p.waitFor(session, atLeast("UserMessageQueued", 1))
        const s = fold("live", queued)
        expect(uiView(s).queue.map((q) => q.text)).toEqual(["make it short and funny"])
        expect(memorySnapshot(s).messages.some((m) => m.role === "user" && m.text === "make it short and funny")).toBe(false)
        return yield* p.waitFor(session, atLeast("TurnCompleted", 2))
      })
    )
    const [t1, t2] = ofType(tape, "TurnStarted") as [EventOf<"TurnStarted">, EventOf<"TurnStarted">]
    const queued = only(ofType(tape, "UserMessageQueued"), "UserMessageQueued")
    const flushed = only(ofType(tape, "QueuedMessagesFlushed"), "QueuedMessagesFlushed")
    const c1 = ofType(tape, "TurnCompleted")[0]!
    expect(c1.turnId).toBe(t1.turnId)
    expect(flushed.messageIds).toEqual([queued.messageId])
    expect(c1.seq < flushed.seq && flushed.seq + 1 === t2.seq).toBe(true)
    expect(promptOf(tape, t2.turnId).messages.at(-1)).toEqual({ role: "user", text: "make it short and funny" })
    expect(textOf(tape, t2.turnId).join("")).toBe("Short and funny: the cat sat.")
    const s = fold("live", tape)
    expect(itemsOf(uiView(s)).map((i) => ("user" in i ? `user:${i.queued}` : "assistant" in i ? "assistant" : "call"))).toEqual([
      "user:false",
      "assistant",
      "user:true",
      "assistant"
    ])
    expect(summaryView(s)).toMatchObject({ messages: 2, turns: 2, phase: "idle" })
    checkFixture("scripted-queued-flush", tape)
  })
})
