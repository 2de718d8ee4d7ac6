// Property: random interleavings of user commands and runner reports, driven through the real SessionWriter on the
// memory store, keep the rules of DESIGN.md §2 and fold(stored tape) == the writer's live state after every step.
import { describe, expect, test } from "bun:test"
import { Effect, Either } from "effect"
import fc from "fast-check"
import type { Input } from "../src/domain/Command.ts"
import type { Actor, Envelope } from "../src/domain/Event.ts"
import { memorySnapshot } from "../src/domain/projections/memory.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import { uiView } from "../src/domain/projections/ui.ts"
import { evolve, fold, initialState, type SessionState } from "../src/domain/state.ts"
import { SessionWriter } from "../src/session/SessionWriter.ts"
import { EventStore } from "../src/store/EventStore.ts"
import { foldStrict } from "../src/domain/admissible.ts"
import { checkTool, testContext, writerLayerWith } from "./support/context.ts"

// ---- actions: abstract, resolved against the live state when they run (ids picked from it, or made up) ----

type Action =
  | { readonly k: "send"; readonly mode: "queue" | "interrupt" | undefined }
  | { readonly k: "approve"; readonly pick: number; readonly edit: "none" | "valid" | "invalid" }
  | { readonly k: "reject"; readonly pick: number; readonly reason: string | undefined }
  | { readonly k: "interrupt" }
  | { readonly k: "cancel_queued"; readonly pick: number }
  | { readonly k: "delta"; readonly stale: boolean }
  | { readonly k: "tool_call"; readonly tool: "eval" | "read_file" | "rm"; readonly valid: boolean; readonly stale: boolean }
  | { readonly k: "completed"; readonly stale: boolean; readonly tokens: number }
  | { readonly k: "failed"; readonly stale: boolean }
  | { readonly k: "tool_started"; readonly pick: number }
  | { readonly k: "tool_result"; readonly pick: number; readonly outcome: "succeeded" | "failed" | "cancelled" }
  | { readonly k: "restart"; readonly approved: "keep" | "cancel" | "reopen" }
  | { readonly k: "retry"; readonly stale: boolean }
  | { readonly k: "rename" }
  | { readonly k: "choose_model" }
  | { readonly k: "together"; readonly actions: ReadonlyArray<Action> }
  /** Whatever moves the session on from where it is (so that runs get deep): the runner's or the user's next step. */
  | { readonly k: "advance"; readonly choice: number }

const pick = fc.nat({ max: 50 })
/** One model report in five aims at an old (or made-up) turn. */
const stale = fc.nat({ max: 4 }).map((n) => n === 0)
const single: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<"queue" | "interrupt" | undefined>(undefined, "queue", "interrupt").map((mode): Action => ({ k: "send", mode })) },
  { weight: 3, arbitrary: fc.record({ pick, edit: fc.constantFrom("none" as const, "valid" as const, "invalid" as const) }).map((r): Action => ({ k: "approve", ...r })) },
  { weight: 2, arbitrary: fc.record({ pick, reason: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }) }).map((r): Action => ({ k: "reject", ...r })) },
  { weight: 1, arbitrary: fc.constant<Action>({ k: "interrupt" }) },
  { weight: 1, arbitrary: pick.map((p): Action => ({ k: "cancel_queued", pick: p })) },
  { weight: 2, arbitrary: stale.map((s): Action => ({ k: "delta", stale: s })) },
  {
    weight: 5,
    arbitrary: fc
      .record({ tool: fc.constantFrom("eval" as const, "eval" as const, "read_file" as const, "rm" as const), valid: fc.nat({ max: 3 }).map((n) => n > 0), stale })
      .map((r): Action => ({ k: "tool_call", ...r }))
  },
  { weight: 2, arbitrary: fc.record({ stale, tokens: fc.nat({ max: 100 }) }).map((r): Action => ({ k: "completed", ...r })) },
  { weight: 1, arbitrary: stale.map((s): Action => ({ k: "failed", stale: s })) },
  { weight: 4, arbitrary: pick.map((p): Action => ({ k: "tool_started", pick: p })) },
  {
    weight: 4,
    arbitrary: fc
      .record({ pick, outcome: fc.constantFrom("succeeded" as const, "succeeded" as const, "failed" as const, "cancelled" as const) })
      .map((r): Action => ({ k: "tool_result", ...r }))
  },
  { weight: 1, arbitrary: fc.constantFrom("keep" as const, "cancel" as const, "reopen" as const).map((approved): Action => ({ k: "restart", approved })) },
  { weight: 1, arbitrary: stale.map((s): Action => ({ k: "retry", stale: s })) },
  { weight: 1, arbitrary: fc.constant<Action>({ k: "rename" }) },
  { weight: 1, arbitrary: fc.constant<Action>({ k: "choose_model" }) },
  { weight: 8, arbitrary: fc.nat({ max: 11 }).map((choice): Action => ({ k: "advance", choice })) }
)
/** A whole reply in one tick: one tool call (an auto-approved read, or an unknown tool) and the end of the turn. */
const reply = fc.constantFrom("read_file" as const, "rm" as const).map(
  (tool): Action => ({ k: "together", actions: [{ k: "tool_call", tool, valid: true, stale: false }, { k: "completed", stale: false, tokens: 1 }] })
)
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 9, arbitrary: single },
  { weight: 2, arbitrary: reply },
  { weight: 1, arbitrary: fc.array(single, { minLength: 2, maxLength: 4 }).map((actions): Action => ({ k: "together", actions })) }
)

/** `pick` into the candidates, favouring the first group (the ids the action is meant for), else any id, else a made-up one. */
const choose = (n: number, preferred: ReadonlyArray<string>, all: ReadonlyArray<string>, madeUp: string): string => {
  const candidates = [...preferred, ...preferred, ...preferred, ...all, madeUp]
  return candidates[n % candidates.length]!
}

/** A turn that is not the streaming one (or a made-up one). */
const oldTurn = (s: SessionState): string => {
  const turns = [...s.messages.turnIndex.keys()].filter((t) => t !== s.interrupts.streaming)
  return turns.at(-1) ?? "turn-0"
}
const turnFor = (s: SessionState, wantStale: boolean): string => (wantStale ? oldTurn(s) : (s.interrupts.streaming ?? oldTurn(s)))

const validArgs = (tool: string): Record<string, unknown> => (tool === "read_file" ? { path: "edited.txt" } : { code: "edited()" })

const resolve = (a: Exclude<Action, { k: "together" }>, s: SessionState, text: string): { readonly input: Input; readonly by: Actor } => {
  const calls = [...s.commands.calls.keys()]
  const byStatus = (st: string) => calls.filter((id) => s.commands.calls.get(id)?.status === st)
  const user: Actor = "user:prop"
  switch (a.k) {
    case "send":
      return { input: { type: "send_message", text, ...(a.mode !== undefined ? { mode: a.mode } : {}) }, by: user }
    case "approve": {
      const callId = choose(a.pick, byStatus("pending"), calls, "call-404")
      const tool = s.commands.calls.get(callId)?.tool ?? "eval"
      const args = a.edit === "valid" ? validArgs(tool) : a.edit === "invalid" ? { nope: 1 } : undefined
      return { input: { type: "approve", callId, ...(args !== undefined ? { args } : {}) }, by: user }
    }
    case "reject":
      return { input: { type: "reject", callId: choose(a.pick, byStatus("pending"), calls, "call-404"), ...(a.reason !== undefined ? { reason: a.reason } : {}) }, by: user }
    case "interrupt":
      return { input: { type: "interrupt" }, by: user }
    case "cancel_queued":
      return { input: { type: "cancel_queued", messageId: choose(a.pick, s.messages.queue.map((q) => q.messageId), [], "msg-404") }, by: user }
    case "delta":
      return { input: { type: "model_delta", turnId: turnFor(s, a.stale), text: text.slice(0, 6) }, by: "model" }
    case "tool_call":
      return {
        input: { type: "model_tool_call", turnId: turnFor(s, a.stale), tool: a.tool, args: a.valid ? validArgs(a.tool) : { code: 42 } },
        by: "model"
      }
    case "completed":
      return { input: { type: "model_completed", turnId: turnFor(s, a.stale), usage: { inputTokens: a.tokens, outputTokens: 1 } }, by: "model" }
    case "failed":
      return { input: { type: "model_failed", turnId: turnFor(s, a.stale), error: "provider down", retryable: false }, by: "model" }
    case "tool_started":
      return { input: { type: "tool_started", callId: choose(a.pick, byStatus("approved"), calls, "call-404") }, by: "tool" }
    case "tool_result": {
      const callId = choose(a.pick, byStatus("running"), calls, "call-404")
      const input: Input =
        a.outcome === "succeeded"
          ? { type: "tool_succeeded", callId, output: "ok" }
          : a.outcome === "failed"
            ? { type: "tool_failed", callId, error: "bad" }
            : { type: "tool_cancelled", callId, reason: "runner gave up", outcome: "unknown" }
      return { input, by: "tool" }
    }
    case "advance": {
      const c = a.choice
      const streamingTurn = s.interrupts.streaming
      const first = (st: string) => byStatus(st)[0]
      if (streamingTurn !== null) {
        if (c % 4 === 3) return resolve({ k: "completed", stale: false, tokens: c }, s, text)
        return resolve({ k: "tool_call", tool: c % 4 === 2 ? "read_file" : "eval", valid: c !== 0, stale: false }, s, text)
      }
      const approvedCall = first("approved")
      if (approvedCall !== undefined) return { input: { type: "tool_started", callId: approvedCall }, by: "tool" }
      const runningCall = first("running")
      if (runningCall !== undefined) {
        return c % 3 === 1
          ? { input: { type: "tool_failed", callId: runningCall, error: "bad" }, by: "tool" }
          : { input: { type: "tool_succeeded", callId: runningCall, output: `out-${c}` }, by: "tool" }
      }
      const pendingCall = first("pending")
      if (pendingCall !== undefined) {
        const tool = s.commands.calls.get(pendingCall)?.tool ?? "eval"
        return c % 3 === 0
          ? { input: { type: "reject", callId: pendingCall, reason: "no" }, by: user }
          : { input: { type: "approve", callId: pendingCall, ...(c % 3 === 2 ? { args: validArgs(tool) } : {}) }, by: user }
      }
      return resolve({ k: "send", mode: undefined }, s, text)
    }
    case "restart":
      return { input: { type: "close_open", reason: "restart", approved: a.approved, settle: true }, by: "system" }
    case "retry": {
      const last = s.interrupts.lastTurn?.turnId ?? "turn-0"
      return { input: { type: "retry_turn", turnId: a.stale ? oldTurn(s) : last }, by: user }
    }
    case "rename":
      return { input: { type: "rename", title: `title ${text}` }, by: user }
    case "choose_model":
      return { input: { type: "choose_model", model: text.length % 2 === 0 ? "scripted" : "other" }, by: user }
    default: {
      const _exhaustive: never = a
      return _exhaustive
    }
  }
}

// ---- comparison of live and folded state, through the projections ----

/** Plain JSON of any value: Maps become entry arrays, Sets arrays. */
const plain = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Map ? [...v.entries()] : v instanceof Set ? [...v] : v)))
const projections = (s: SessionState) => plain({ ui: uiView(s), memory: memorySnapshot(s), summary: summaryView(s) })

// ---- the invariants of a whole tape (DESIGN.md §2) ----

const checkTape = (tape: ReadonlyArray<Envelope>, session: string): void => {
  tape.forEach((e, i) => {
    expect(e.seq).toBe(i + 1)
    expect(e.session).toBe(session)
  })
  expect(tape[0]?.type).toBe("SessionCreated")
  const approvedCalls = new Set<string>()
  const startedCalls = new Set<string>()
  const queuedOrder: Array<string> = []
  const entered: Array<string> = []
  const cancelled = new Set<string>()
  const state = initialState(session)
  for (const e of tape) {
    const before = { streaming: state.interrupts.streaming }
    switch (e.type) {
      case "ToolCallApproved":
        // approved once, unless a copied tape's approval was withdrawn (ToolCallReopened) and it waits again
        expect(approvedCalls.has(e.callId)).toBe(false)
        approvedCalls.add(e.callId)
        break
      case "ToolCallReopened":
        expect(approvedCalls.has(e.callId)).toBe(true)
        expect(startedCalls.has(e.callId)).toBe(false)
        approvedCalls.delete(e.callId)
        break
      case "ToolExecutionStarted":
        // rule 2: only after approval, at most once
        expect(approvedCalls.has(e.callId)).toBe(true)
        expect(startedCalls.has(e.callId)).toBe(false)
        startedCalls.add(e.callId)
        break
      case "UserMessageQueued":
        queuedOrder.push(e.messageId)
        break
      case "QueuedMessageCancelled":
        expect(entered).not.toContain(e.messageId)
        cancelled.add(e.messageId)
        break
      case "QueuedMessagesFlushed":
        for (const id of e.messageIds) {
          expect(entered).not.toContain(id)
          expect(cancelled.has(id)).toBe(false)
          expect(queuedOrder).toContain(id)
          entered.push(id)
        }
        break
      case "TurnStarted":
        // one turn streams at a time
        expect(before.streaming).toBeNull()
        break
      default:
        break
    }
    evolve(state, e)
    if (e.type === "TurnStarted") {
      // rule 1: every queued message flushed before it; rule 3: nothing else open when the model is called
      expect(state.messages.queue).toEqual([])
      expect(state.commands.pending.size + state.commands.active.size).toBe(0)
      // the prompt of this turn: every call answered with a final result
      for (const m of memorySnapshot(state).messages) {
        if (m.role !== "assistant" || m.turnId === e.turnId) continue
        for (const c of m.toolCalls) {
          expect(c.result.length).toBeGreaterThan(0)
          expect(["pending", "approved", "running"]).not.toContain(state.commands.calls.get(c.callId)?.status)
        }
      }
    }
  }
  // queued messages entered the conversation in their arrival order, each once (or were cancelled, or still wait)
  expect(entered).toEqual(queuedOrder.filter((id) => entered.includes(id)))
  const waiting = state.messages.queue.map((q) => q.messageId)
  for (const id of queuedOrder) expect([entered.includes(id), cancelled.has(id), waiting.includes(id)].filter(Boolean).length).toBe(1)
}

/** The model never sees a queued message, and never a call without a result. */
const checkMemory = (s: SessionState): void => {
  const memory = memorySnapshot(s)
  const userTexts = new Set(memory.messages.flatMap((m) => (m.role === "user" ? [m.text] : [])))
  for (const q of s.messages.queue) expect(userTexts.has(q.text)).toBe(false)
  for (const m of memory.messages) if (m.role === "assistant") for (const c of m.toolCalls) expect(c.result.length).toBeGreaterThan(0)
  const calls = memory.messages.flatMap((m) => (m.role === "assistant" ? m.toolCalls.map((c) => c.callId) : []))
  // Every call is in the memory, but those of a reply that was retried (it left the memory with its calls).
  const retried = new Set(s.messages.items.flatMap((i) => (i.kind === "assistant" && i.retriedBy !== null ? [i.turnId] : [])))
  const expected = [...s.commands.calls.values()].filter((c) => !retried.has(c.turnId)).map((c) => c.callId)
  expect(calls.sort()).toEqual(expected.sort())
}

// ---- the run ----

const isReportInput = (input: Input) => input.type.startsWith("model_") || input.type.startsWith("tool_")

const run = (actions: ReadonlyArray<Action>) =>
  Effect.gen(function* () {
    const writer = yield* SessionWriter
    const store = yield* EventStore
    const session = yield* writer.create()
    let texts = 0
    let rejectedReports = 0

    const submitOne = (input: Input, by: Actor) =>
      Effect.gen(function* () {
        const result = yield* Effect.either(writer.submit(session, input, by))
        if (Either.isLeft(result)) {
          expect(result.left._tag).toBe("Rejection")
          if (result.left._tag === "Rejection" && isReportInput(input)) rejectedReports++
        }
        return result
      })

    for (const a of actions) {
      const headBefore = yield* store.head(session)
      if (a.k === "together") {
        // Several inputs in one tick: decided in order against the live state, appended as one batch.
        const resolved = yield* writer.inspect(session, (s) => a.actions.map((x) => (x.k === "together" ? null : resolve(x, s, `text-${texts++}`))))
        const results = yield* Effect.all(
          resolved.flatMap((r) => (r === null ? [] : [submitOne(r.input, r.by)])),
          { concurrency: "unbounded" }
        )
        if (results.every(Either.isLeft)) expect(yield* store.head(session)).toBe(headBefore)
      } else {
        const { input, by } = yield* writer.inspect(session, (s) => resolve(a, s, `text-${texts++}`))
        const result = yield* submitOne(input, by)
        // A rejection appends nothing; an ack's events are exactly what was stored after the head before it.
        const tapeNow = yield* store.read(session, headBefore)
        if (Either.isLeft(result)) expect(tapeNow).toEqual([])
        else {
          expect(result.right.head).toBe(headBefore + result.right.events.length)
          expect(plain(tapeNow)).toEqual(plain(result.right.events))
        }
      }
      // fold(the stored tape) == the writer's live state, through every projection
      const tape = yield* store.read(session, 0)
      const live = yield* writer.inspect(session, (s) => ({ projections: projections(s), head: s.head }))
      expect(live.head).toBe(tape.length)
      expect(projections(fold(session, tape))).toEqual(live.projections)
      yield* writer.inspect(session, checkMemory)
    }
    const tape = yield* store.read(session, 0)
    checkTape(tape, session)
    // Every event the live writer appends is one the strict fold of imports accepts.
    expect(foldStrict(session, tape, { checkTool })).not.toHaveProperty("refused")
    // rule 5: every refused report was counted as dropped
    expect(writer.droppedReports()).toBe(rejectedReports)
    const summary = yield* store.summary(session)
    expect(summary._tag === "Some" ? plain(summary.value) : null).toEqual(plain(summaryView(fold(session, tape))))
    return tape
  }).pipe(Effect.provide(writerLayerWith({ ...testContext, limits: { maxTurnsPerMessage: 2, maxInvalidStreak: 2, maxCallsPerTurn: 4 } })))

/** Seeded so a failure replays: WRITER_PROPERTY_SEED=<n> runs another sequence (fast-check prints the seed it used). */
const SEED = Number(process.env.WRITER_PROPERTY_SEED ?? "") || 20261201

describe("SessionWriter under random interleavings", () => {
  test("keeps the rules of DESIGN.md §2 and fold(tape) == live state after every step", async () => {
    const seen = new Set<string>()
    let events = 0
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 30, size: "max" }), async (actions) => {
        const tape = await Effect.runPromise(run(actions))
        events += tape.length
        for (const e of tape) seen.add(e.type === "ToolExecutionCancelled" ? `${e.type}:${e.outcome}` : e.type === "LoopStopped" ? `${e.type}:${e.reason}` : e.type)
      }),
      { numRuns: 200, seed: SEED }
    )
    // The generator must drive sessions through every kind of event, or the property proves little.
    expect(events).toBeGreaterThan(200 * 5)
    expect([...seen].sort()).toEqual(
      [
        "SessionCreated",
        "UserMessageAdded",
        "UserMessageQueued",
        "QueuedMessagesFlushed",
        "QueuedMessageCancelled",
        "TurnStarted",
        "AssistantDelta",
        "ToolCallRequested",
        "ToolCallInvalid",
        "TurnCompleted",
        "TurnInterrupted",
        "TurnFailed",
        "ToolCallApproved",
        "ToolCallRejected",
        "ToolExecutionStarted",
        "ToolExecutionSucceeded",
        "ToolExecutionFailed",
        "ToolExecutionCancelled:unknown",
        "ToolExecutionCancelled:not_run",
        "InterruptRequested",
        "ToolCallReopened",
        "LoopStopped:turn_limit",
        "LoopStopped:invalid_calls",
        "SessionRenamed",
        "ModelChosen"
      ].sort()
    )
  }, 30_000)
})
