// Tape fixtures (test/tapes/*.jsonl): decoded with the real schema, folded with the real reducers, every projection asserted.
// Also the tape file format itself (parseTape / formatTape) and the next input each fixture invites.
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { Either } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { foldStrict } from "../src/domain/admissible.ts"
import { memorySnapshot, memoryTokens, promptFor } from "../src/domain/projections/memory.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import { phaseOf, type UiView, uiView } from "../src/domain/projections/ui.ts"
import { fold, type SessionState } from "../src/domain/state.ts"
import { formatTape, parseTape } from "../src/domain/tapeFile.ts"
import { testContext } from "./support/context.ts"
import { given } from "./support/given.ts"
import { fixtureNames, itemsOf, loadTape, T0, tapePath } from "./support/tapes.ts"

// ---- plain views of the UI projection ----

const idle = { canSend: true, canApprove: false, canReject: false, canInterrupt: false }
const deciding = { canSend: true, canApprove: true, canReject: true, canInterrupt: true }

const at = (step: number) => T0 + step * 1000
const summaryOf = (s: SessionState) => JSON.parse(JSON.stringify(summaryView(s)))
const memoryOf = (s: SessionState) => JSON.parse(JSON.stringify(memorySnapshot(s)))

interface Fixture {
  readonly tape: ReadonlyArray<Envelope>
  readonly state: SessionState
  readonly ui: UiView
}
const open = (name: string): Fixture => {
  const tape = loadTape(name)
  const state = fold(name, tape)
  return { tape, state, ui: uiView(state) }
}

// ---- properties every fixture keeps ----

describe("every fixture", () => {
  const names = fixtureNames()

  test("there are at least 12 fixtures", () => {
    expect(names.length).toBeGreaterThanOrEqual(12)
  })

  for (const name of names) {
    test(`${name}: decodes, round-trips byte for byte, and folds to its last seq`, () => {
      const text = readFileSync(tapePath(name), "utf8")
      const tape = loadTape(name)
      expect(formatTape(tape)).toBe(text)
      expect(tape.every((e) => e.session === name)).toBe(true)
      const s = fold(name, tape)
      expect(s.head).toBe(tape.length)
      expect(summaryView(s).head).toBe(tape.length)
    })

    test(`${name}: at every prefix the model never sees a queued message, and every prompt has each call answered`, () => {
      const tape = loadTape(name)
      for (let n = 1; n <= tape.length; n++) {
        const s = fold(name, tape, n)
        const memory = memorySnapshot(s)
        const userTexts = memory.messages.flatMap((m) => (m.role === "user" ? [m.text] : []))
        for (const q of s.messages.queue) expect(userTexts).not.toContain(q.text)
        const e = tape[n - 1]!
        if (e.type === "TurnStarted") {
          // The prompt of a new turn: every earlier call has a final result, and nothing is queued.
          expect(s.messages.queue).toEqual([])
          for (const m of memory.messages) {
            if (m.role !== "assistant" || m.turnId === e.turnId) continue
            for (const c of m.toolCalls) {
              const status = s.commands.calls.get(c.callId)?.status
              expect({ call: c.callId, final: ["succeeded", "failed", "rejected", "cancelled", "invalid"].includes(status ?? "") }).toEqual({ call: c.callId, final: true })
            }
          }
        }
        // The UI folds the same events: one conversation item per memory message/slot (a compacted memory holds one
        // summary note in place of the messages before its cut; the UI keeps them all and a marker).
        const ui = uiView(s)
        const shown = ui.items.filter((i) => i.kind === "user" || i.kind === "assistant" || i.kind === "loop_stopped").length
        if (memory.messages[0]?.role !== "summary") expect(shown).toBe(memory.messages.length)
        else expect(shown).toBeGreaterThanOrEqual(memory.messages.length)
      }
    })
  }
})

// ---- each fixture, every projection ----

describe("plain-chat", () => {
  const { state, ui, tape } = open("plain-chat")

  test("ui: two exchanges, idle, nothing pending", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Hello, who are you?", queued: false },
      { assistant: "Hi! I am a scripted model.", status: "completed", note: null },
      { user: "Thanks!", queued: false },
      { assistant: "You're welcome.", status: "completed", note: null }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.pendingApprovals).toEqual([])
    expect(ui.queue).toEqual([])
    expect(ui.actions).toEqual(idle)
    expect(ui.title).toBe("Hello, who are you?")
  })

  test("memory: the conversation, exactly", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Hello, who are you?" },
        { role: "assistant", turnId: "turn-3", text: "Hi! I am a scripted model.", toolCalls: [] },
        { role: "user", text: "Thanks!" },
        { role: "assistant", turnId: "turn-8", text: "You're welcome.", toolCalls: [] }
      ]
    })
  })

  test("summary: counts, head, tokens summed over turns", () => {
    expect(summaryOf(state)).toEqual({
      session: "plain-chat",
      title: "Hello, who are you?",
      createdAt: T0,
      updatedAt: at(7),
      head: 10,
      messages: 2,
      turns: 2,
      toolCalls: 0,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 42, output: 11 }
    })
  })

  test("then: interrupt with nothing running is rejected and appends nothing", () => {
    given(tape).when({ type: "interrupt" }).then({ rejected: "nothing_to_interrupt" })
  })

  test("then: a new message is added and starts a turn at once", () => {
    given(tape)
      .when({ type: "send_message", text: "More?" })
      .then([
        { type: "UserMessageAdded", messageId: "msg-11", text: "More?", by: "user:alice" },
        { type: "TurnStarted", turnId: "turn-12", model: "scripted", by: "system" }
      ])
  })
})

describe("queued-after-stream", () => {
  const { state, ui } = open("queued-after-stream")

  test("ui: queued messages entered in order after the streamed reply, marked as queued", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Tell me a story", queued: false },
      { assistant: "Once upon a time.", status: "completed", note: null },
      { user: "make it short", queued: true },
      { user: "and funny", queued: true },
      { assistant: "A cat sat. The end.", status: "completed", note: null }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.queue).toEqual([])
    expect(ui.actions).toEqual(idle)
    expect(ui.title).toBe("Stories")
  })

  test("memory: the reply is whole, the queued messages follow it in order", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Tell me a story" },
        { role: "assistant", turnId: "turn-3", text: "Once upon a time.", toolCalls: [] },
        { role: "user", text: "make it short" },
        { role: "user", text: "and funny" },
        { role: "assistant", turnId: "turn-10", text: "A cat sat. The end.", toolCalls: [] }
      ]
    })
  })

  test("while the reply streamed, the queue was visible in the UI and absent from memory", () => {
    const s = fold("queued-after-stream", loadTape("queued-after-stream"), 6)
    expect(uiView(s).queue.map((q) => q.text)).toEqual(["make it short", "and funny"])
    expect(uiView(s).phase).toBe("streaming")
    expect(memoryOf(s).messages).toEqual([
      { role: "user", text: "Tell me a story" },
      { role: "assistant", turnId: "turn-3", text: "Once upon", toolCalls: [] }
    ])
    expect(summaryView(s).messages).toBe(1)
    expect(summaryView(s).phase).toBe("streaming")
  })

  test("summary: queued messages count once flushed; title from SessionCreated", () => {
    expect(summaryOf(state)).toEqual({
      session: "queued-after-stream",
      title: "Stories",
      createdAt: T0,
      updatedAt: at(8),
      head: 12,
      messages: 3,
      turns: 2,
      toolCalls: 0,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 35, output: 10 }
    })
  })
})

describe("queued-during-approval", () => {
  const { state, ui, tape } = open("queued-during-approval")

  test("the flush comes after the tool result and right before the next TurnStarted", () => {
    expect(tape.slice(10, 13).map((e) => e.type)).toEqual(["ToolExecutionSucceeded", "QueuedMessagesFlushed", "TurnStarted"])
  })

  test("ui: tool card succeeded, then both queued messages, then the answer", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "What is 6*7?", queued: false },
      { assistant: "Let me compute.", status: "completed", note: null },
      { call: "call-5", tool: "eval", status: "succeeded", args: { code: "6*7" }, output: "42", decidedBy: "user:alice" },
      { user: "also explain it", queued: true },
      { user: "thanks in advance", queued: true },
      { assistant: "It is 42: six sevens.", status: "completed", note: null }
    ])
    expect(ui.calls.get("call-5")?.description).toBe("multiply")
    expect(ui.phase).toBe("idle")
    expect(ui.actions).toEqual(idle)
  })

  test("memory: the result and the follow-ups reach the model together", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "What is 6*7?" },
        { role: "assistant", turnId: "turn-3", text: "Let me compute.", toolCalls: [{ callId: "call-5", tool: "eval", args: { code: "6*7" }, result: "42" }] },
        { role: "user", text: "also explain it" },
        { role: "user", text: "thanks in advance" },
        { role: "assistant", turnId: "turn-13", text: "It is 42: six sevens.", toolCalls: [] }
      ]
    })
  })

  test("while awaiting approval: phase, pending approval, actions", () => {
    const s = fold("queued-during-approval", tape, 7)
    const view = uiView(s)
    expect(view.phase).toBe("awaiting_approval")
    expect(view.pendingApprovals.map((c) => c.callId)).toEqual(["call-5"])
    expect(view.actions).toEqual(deciding)
    expect(view.queue.map((q) => q.text)).toEqual(["also explain it"])
    expect(summaryView(s).pendingApprovals).toBe(1)
    expect(uiView(fold("queued-during-approval", tape, 9)).phase).toBe("executing")
  })

  test("summary", () => {
    expect(summaryOf(state)).toEqual({
      session: "queued-during-approval",
      title: "What is 6*7?",
      createdAt: T0,
      updatedAt: at(11),
      head: 15,
      messages: 3,
      turns: 2,
      toolCalls: 1,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 48, output: 17 }
    })
  })
})

describe("approve-reject-edit", () => {
  const { state, ui } = open("approve-reject-edit")

  test("ui: approved, rejected with its reason, approved with edited args", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Run three snippets", queued: false },
      { assistant: "", status: "completed", note: null },
      { call: "call-4", tool: "eval", status: "succeeded", args: { code: "1+1" }, output: "2", decidedBy: "user:alice" },
      { call: "call-5", tool: "eval", status: "rejected", args: { code: "while(true){}" }, reason: "that loops forever", decidedBy: "user:alice" },
      { call: "call-6", tool: "eval", status: "succeeded", args: { code: "3+3" }, edited: true, output: "6", decidedBy: "user:alice" },
      { assistant: "Results: 2 and 6.", status: "completed", note: null }
    ])
    expect(ui.calls.get("call-6")?.requestedArgs).toEqual({ code: "2+2" })
    expect(ui.phase).toBe("idle")
    expect(ui.actions).toEqual(idle)
  })

  test("memory: each call paired with its result, the rejection reason, and a note on the edited args", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Run three snippets" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "",
          toolCalls: [
            { callId: "call-4", tool: "eval", args: { code: "1+1" }, result: "2" },
            { callId: "call-5", tool: "eval", args: { code: "while(true){}" }, result: "[Rejected by the user: that loops forever]" },
            {
              callId: "call-6",
              tool: "eval",
              args: { code: "3+3" },
              result: '[The user edited the arguments before approving; it ran with {"code":"3+3"}]\n6'
            }
          ]
        },
        { role: "assistant", turnId: "turn-15", text: "Results: 2 and 6.", toolCalls: [] }
      ]
    })
  })

  test("the loop back comes in the same append as the last result", () => {
    const tape = loadTape("approve-reject-edit")
    expect(tape[13]!.type).toBe("ToolExecutionSucceeded")
    expect(tape[14]!.type).toBe("TurnStarted")
    expect(tape[14]!.at).toBe(tape[13]!.at)
  })

  test("summary: title from SessionCreated, three calls, tokens", () => {
    expect(summaryOf(state)).toEqual({
      session: "approve-reject-edit",
      title: "Three calls",
      createdAt: T0,
      updatedAt: at(14),
      head: 17,
      messages: 1,
      turns: 2,
      toolCalls: 3,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 71, output: 35 }
    })
  })
})

describe("approval-pending", () => {
  const { state, ui, tape } = open("approval-pending")

  test("ui: the card waits for a decision; approve, reject and interrupt are allowed", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Delete the temp files", queued: false },
      { assistant: "I will run:", status: "completed", note: null },
      { call: "call-5", tool: "eval", status: "pending", args: { code: "cleanup()" } }
    ])
    expect(ui.phase).toBe("awaiting_approval")
    expect(ui.pendingApprovals.map((c) => c.callId)).toEqual(["call-5"])
    expect(ui.actions).toEqual(deciding)
  })

  test("memory: the pending call is paired with a placeholder result", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Delete the temp files" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "I will run:",
          toolCalls: [{ callId: "call-5", tool: "eval", args: { code: "cleanup()" }, result: "[Not run: awaiting the user's approval]" }]
        }
      ]
    })
  })

  test("summary: one pending approval", () => {
    expect(summaryOf(state)).toEqual({
      session: "approval-pending",
      title: "Delete the temp files",
      createdAt: T0,
      updatedAt: at(4),
      head: 6,
      messages: 1,
      turns: 1,
      toolCalls: 1,
      phase: "awaiting_approval",
      pendingApprovals: 1,
      tokens: { input: 5, output: 5 }
    })
  })

  test("then: a message now is queued, not added", () => {
    given(tape)
      .when({ type: "send_message", text: "are you sure?" })
      .then([{ type: "UserMessageQueued", messageId: "msg-7", text: "are you sure?", by: "user:alice" }])
  })

  test("then: the tool cannot start before it is approved", () => {
    given(tape).when({ type: "tool_started", callId: "call-5" }, "tool").then({ rejected: "stale" })
  })
})

describe("double-approve", () => {
  const { state, ui, tape } = open("double-approve")

  test("the second approve left no trace: one ToolCallApproved, one execution", () => {
    expect(tape.filter((e) => e.type === "ToolCallApproved").length).toBe(1)
    expect(tape.filter((e) => e.type === "ToolExecutionStarted").length).toBe(1)
  })

  test("then: approving again (after it ran) is rejected as not pending", () => {
    given(tape).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
    given(tape.slice(0, 7)).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
  })

  test("ui, memory, summary", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Add 2 and 2", queued: false },
      { assistant: "", status: "completed", note: null },
      { call: "call-4", tool: "eval", status: "succeeded", args: { code: "2+2" }, output: "4", decidedBy: "user:alice" },
      { assistant: "4", status: "completed", note: null }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.actions).toEqual(idle)
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Add 2 and 2" },
        { role: "assistant", turnId: "turn-3", text: "", toolCalls: [{ callId: "call-4", tool: "eval", args: { code: "2+2" }, result: "4" }] },
        { role: "assistant", turnId: "turn-9", text: "4", toolCalls: [] }
      ]
    })
    expect(summaryOf(state)).toEqual({
      session: "double-approve",
      title: "Add 2 and 2",
      createdAt: T0,
      updatedAt: at(9),
      head: 11,
      messages: 1,
      turns: 2,
      toolCalls: 1,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 14, output: 6 }
    })
  })
})

describe("approve-after-interrupt", () => {
  const { state, ui, tape } = open("approve-after-interrupt")

  test("the interrupt rejected the pending call in the same append", () => {
    expect(tape.slice(-2).map((e) => [e.type, e.seq, e.at])).toEqual([
      ["InterruptRequested", 6, at(4)],
      ["ToolCallRejected", 7, at(4)]
    ])
  })

  test("then: approve after the interrupt is rejected; reject too", () => {
    given(tape).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
    given(tape).when({ type: "reject", callId: "call-4", reason: "no" }).then({ rejected: "not_pending" })
  })

  test("ui, memory, summary", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Run something", queued: false },
      { assistant: "", status: "completed", note: null },
      { call: "call-4", tool: "eval", status: "rejected", args: { code: "risky()" }, reason: "interrupted: changed my mind", decidedBy: "user:alice" }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.pendingApprovals).toEqual([])
    expect(ui.actions).toEqual(idle)
    expect(state.interrupts.count).toBe(1)
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Run something" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "",
          toolCalls: [{ callId: "call-4", tool: "eval", args: { code: "risky()" }, result: "[Rejected by the user: interrupted: changed my mind]" }]
        }
      ]
    })
    expect(summaryOf(state)).toEqual({
      session: "approve-after-interrupt",
      title: "Run something",
      createdAt: T0,
      updatedAt: at(4),
      head: 7,
      messages: 1,
      turns: 1,
      toolCalls: 1,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 5, output: 5 }
    })
  })
})

describe("interrupt-while-streaming", () => {
  const { state, ui, tape } = open("interrupt-while-streaming")

  test("ui: the partial text stays, marked interrupted with the reason", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Write a long essay", queued: false },
      { assistant: "The history of computing begins", status: "interrupted", note: "too long" }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.actions).toEqual(idle)
  })

  test("memory: the partial text with a note", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Write a long essay" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "The history of computing begins\n[This reply was interrupted (too long); the text above is partial.]",
          toolCalls: []
        }
      ]
    })
  })

  test("summary: no tokens for an interrupted turn", () => {
    expect(summaryOf(state)).toEqual({
      session: "interrupt-while-streaming",
      title: "Write a long essay",
      createdAt: T0,
      updatedAt: at(4),
      head: 7,
      messages: 1,
      turns: 1,
      toolCalls: 0,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 0, output: 0 }
    })
  })

  test("then: the model's late chunk is dropped; a second interrupt is rejected", () => {
    given(tape).when({ type: "model_delta", turnId: "turn-3", text: " in 1936" }, "model").then({ rejected: "stale" })
    given(tape).when({ type: "interrupt" }).then({ rejected: "nothing_to_interrupt" })
  })
})

describe("interrupt-during-tool", () => {
  const { state, ui, tape } = open("interrupt-during-tool")

  test("one append: the interrupt, the cancellations, the flush of the queue and the next turn", () => {
    const batch = tape.filter((e) => e.at === at(8))
    expect(batch.map((e) => e.type)).toEqual([
      "InterruptRequested",
      "ToolExecutionCancelled",
      "ToolExecutionCancelled",
      "QueuedMessagesFlushed",
      "TurnStarted"
    ])
  })

  test("ui: running call cancelled (unknown outcome), approved one cancelled (not run)", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Read the config and compute", queued: false },
      { assistant: "", status: "completed", note: null },
      {
        call: "call-4",
        tool: "read_file",
        status: "cancelled",
        args: { path: "config.json" },
        reason: "interrupted: taking too long",
        outcome: "unknown",
        decidedBy: "policy:auto"
      },
      {
        call: "call-6",
        tool: "eval",
        status: "cancelled",
        args: { code: "slow()" },
        reason: "interrupted: taking too long",
        outcome: "not_run",
        decidedBy: "user:alice"
      },
      { user: "hurry up please", queued: true },
      { assistant: "Stopping as asked.", status: "completed", note: null }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.actions).toEqual(idle)
  })

  test("memory: both calls answered with what came of them", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Read the config and compute" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "",
          toolCalls: [
            { callId: "call-4", tool: "read_file", args: { path: "config.json" }, result: "[Cancelled (interrupted: taking too long): it was stopped while running, so it may have done part of its work]" },
            { callId: "call-6", tool: "eval", args: { code: "slow()" }, result: "[Cancelled (interrupted: taking too long): it did not run]" }
          ]
        },
        { role: "user", text: "hurry up please" },
        { role: "assistant", turnId: "turn-15", text: "Stopping as asked.", toolCalls: [] }
      ]
    })
  })

  test("while executing: phase executing, interrupt allowed", () => {
    const view = uiView(fold("interrupt-during-tool", tape, 10))
    expect(view.phase).toBe("executing")
    expect(view.actions).toEqual({ canSend: true, canApprove: false, canReject: false, canInterrupt: true })
  })

  test("summary", () => {
    expect(summaryOf(state)).toEqual({
      session: "interrupt-during-tool",
      title: "Read the config and compute",
      createdAt: T0,
      updatedAt: at(10),
      head: 17,
      messages: 2,
      turns: 2,
      toolCalls: 2,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 27, output: 11 }
    })
  })
})

describe("tool-failure", () => {
  const { state, ui } = open("tool-failure")

  test("ui: the failed call, the corrected call, the answer", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Evaluate x + 1", queued: false },
      { assistant: "", status: "completed", note: null },
      { call: "call-4", tool: "eval", status: "failed", args: { code: "x + 1" }, error: "ReferenceError: x is not defined", decidedBy: "user:alice" },
      { assistant: "", status: "completed", note: null },
      { call: "call-10", tool: "eval", status: "succeeded", args: { code: "let x = 1; x + 1" }, output: "2", decidedBy: "user:alice" },
      { assistant: "It is 2.", status: "completed", note: null }
    ])
    expect(ui.phase).toBe("idle")
    expect(ui.actions).toEqual(idle)
  })

  test("memory: the error is fed back to the model as the call's result", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Evaluate x + 1" },
        { role: "assistant", turnId: "turn-3", text: "", toolCalls: [{ callId: "call-4", tool: "eval", args: { code: "x + 1" }, result: "Error: ReferenceError: x is not defined" }] },
        { role: "assistant", turnId: "turn-9", text: "", toolCalls: [{ callId: "call-10", tool: "eval", args: { code: "let x = 1; x + 1" }, result: "2" }] },
        { role: "assistant", turnId: "turn-15", text: "It is 2.", toolCalls: [] }
      ]
    })
  })

  test("summary", () => {
    expect(summaryOf(state)).toEqual({
      session: "tool-failure",
      title: "Evaluate x + 1",
      createdAt: T0,
      updatedAt: at(13),
      head: 17,
      messages: 1,
      turns: 3,
      toolCalls: 2,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 60, output: 18 }
    })
  })
})

describe("invalid-tool-call", () => {
  const { state, ui, tape } = open("invalid-tool-call")
  const unknownTool = 'unknown tool "rm"; known tools: eval, read_file'
  const badArgs = 'invalid args for eval: { readonly code: string }\n└─ ["code"]\n   └─ Expected string, actual 5'

  test("the turn completed with only invalid calls loops back to the model at once", () => {
    expect(tape.slice(5, 7).map((e) => e.type)).toEqual(["TurnCompleted", "TurnStarted"])
  })

  test("ui: invalid cards with their errors, never pending", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Remove everything", queued: false },
      { assistant: "", status: "completed", note: null },
      { call: "call-4", tool: "rm", status: "invalid", args: {}, error: unknownTool },
      { call: "call-5", tool: "eval", status: "invalid", args: {}, error: badArgs },
      { assistant: "I cannot do that.", status: "completed", note: null }
    ])
    expect(ui.pendingApprovals).toEqual([])
    expect(ui.actions).toEqual(idle)
  })

  test("memory: each invalid call answered with its error", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Remove everything" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "",
          toolCalls: [
            { callId: "call-4", tool: "rm", args: {}, result: `[Invalid tool call, not run: ${unknownTool}]` },
            { callId: "call-5", tool: "eval", args: {}, result: `[Invalid tool call, not run: ${badArgs}]` }
          ]
        },
        { role: "assistant", turnId: "turn-7", text: "I cannot do that.", toolCalls: [] }
      ]
    })
  })

  test("summary: invalid calls count as tool calls", () => {
    expect(summaryOf(state)).toEqual({
      session: "invalid-tool-call",
      title: "Remove everything",
      createdAt: T0,
      updatedAt: at(6),
      head: 9,
      messages: 1,
      turns: 2,
      toolCalls: 2,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 20, output: 10 }
    })
  })

  test("then: an invalid call cannot be approved", () => {
    given(tape).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
  })
})

describe("late-report-dropped", () => {
  const { state, ui, tape } = open("late-report-dropped")

  test("then: the runner's late result and the model's late completion are dropped", () => {
    given(tape.slice(0, 9)).when({ type: "tool_succeeded", callId: "call-4", output: "too late" }, "tool").then({ rejected: "stale" })
    given(tape).when({ type: "tool_succeeded", callId: "call-4", output: "too late" }, "tool").then({ rejected: "stale" })
    given(tape).when({ type: "model_completed", turnId: "turn-3" }, "model").then({ rejected: "stale" })
    given(tape).when({ type: "model_delta", turnId: "turn-3", text: "late" }, "model").then({ rejected: "stale" })
    given(tape).when({ type: "tool_started", callId: "call-4" }, "tool").then({ rejected: "stale" })
  })

  test("ui: the cancelled call, then a fresh exchange", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Compute slowly", queued: false },
      { assistant: "", status: "completed", note: null },
      { call: "call-4", tool: "eval", status: "cancelled", args: { code: "slow()" }, reason: "interrupted: stop", outcome: "unknown", decidedBy: "user:alice" },
      { user: "Never mind, say hi", queued: false },
      { assistant: "Hi.", status: "completed", note: null }
    ])
    expect(ui.actions).toEqual(idle)
  })

  test("memory and summary", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Compute slowly" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "",
          toolCalls: [{ callId: "call-4", tool: "eval", args: { code: "slow()" }, result: "[Cancelled (interrupted: stop): it was stopped inside its sandbox, which cannot change anything outside it, so nothing came of it]" }]
        },
        { role: "user", text: "Never mind, say hi" },
        { role: "assistant", turnId: "turn-11", text: "Hi.", toolCalls: [] }
      ]
    })
    expect(summaryOf(state)).toEqual({
      session: "late-report-dropped",
      title: "Compute slowly",
      createdAt: T0,
      updatedAt: at(11),
      head: 13,
      messages: 2,
      turns: 2,
      toolCalls: 1,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 17, output: 6 }
    })
  })
})

describe("restart-recovery", () => {
  const { state, ui, tape } = open("restart-recovery")

  test("close_open: the streaming turn interrupted (restart), the running call cancelled (unknown), in one append", () => {
    expect(tape.slice(-2).map((e) => ({ type: e.type, by: e.by, at: e.at }))).toEqual([
      { type: "TurnInterrupted", by: "system", at: at(6) },
      { type: "ToolExecutionCancelled", by: "system", at: at(6) }
    ])
  })

  test("ui: the pending approval stays pending", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Read a file and run code", queued: false },
      { assistant: "Working on it", status: "interrupted", note: "restart" },
      { call: "call-5", tool: "read_file", status: "cancelled", args: { path: "notes.txt" }, reason: "restart", outcome: "unknown", decidedBy: "policy:auto" },
      { call: "call-7", tool: "eval", status: "pending", args: { code: "summarize()" } }
    ])
    expect(ui.phase).toBe("awaiting_approval")
    expect(ui.pendingApprovals.map((c) => c.callId)).toEqual(["call-7"])
    expect(ui.actions).toEqual(deciding)
  })

  test("memory: partial text noted, cancelled call answered, pending call placeholder", () => {
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Read a file and run code" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "Working on it\n[This reply was interrupted (restart); the text above is partial.]",
          toolCalls: [
            { callId: "call-5", tool: "read_file", args: { path: "notes.txt" }, result: "[Cancelled (restart): it was stopped while running, so it may have done part of its work]" },
            { callId: "call-7", tool: "eval", args: { code: "summarize()" }, result: "[Not run: awaiting the user's approval]" }
          ]
        }
      ]
    })
  })

  test("summary: the pending approval is counted", () => {
    expect(summaryOf(state)).toEqual({
      session: "restart-recovery",
      title: "Read a file and run code",
      createdAt: T0,
      updatedAt: at(6),
      head: 10,
      messages: 1,
      turns: 1,
      toolCalls: 2,
      phase: "awaiting_approval",
      pendingApprovals: 1,
      tokens: { input: 0, output: 0 }
    })
  })

  test("then: a second restart finds nothing open; the pending call can still be approved", () => {
    given(tape).when({ type: "close_open", reason: "restart", approved: "keep", settle: true }, "system").then({ rejected: "nothing_open" })
    given(tape).when({ type: "approve", callId: "call-7" }).then([{ type: "ToolCallApproved", callId: "call-7", by: "user:alice" }])
  })
})

describe("send-interrupt-mode", () => {
  const { state, ui, tape } = open("send-interrupt-mode")

  test("one append: interrupt, flush of the earlier queued message, the new message, a new turn", () => {
    expect(tape.filter((e) => e.at === at(4)).map((e) => e.type)).toEqual([
      "InterruptRequested",
      "TurnInterrupted",
      "QueuedMessagesFlushed",
      "UserMessageAdded",
      "TurnStarted"
    ])
  })

  test("ui, memory, summary", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Explain monads", queued: false },
      { assistant: "A monad is", status: "interrupted", note: "interrupted by a new message" },
      { user: "first, what is a functor?", queued: true },
      { user: "actually, use TypeScript", queued: false },
      { assistant: "In TypeScript...", status: "completed", note: null }
    ])
    expect(ui.actions).toEqual(idle)
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Explain monads" },
        {
          role: "assistant",
          turnId: "turn-3",
          text: "A monad is\n[This reply was interrupted (interrupted by a new message); the text above is partial.]",
          toolCalls: []
        },
        { role: "user", text: "first, what is a functor?" },
        { role: "user", text: "actually, use TypeScript" },
        { role: "assistant", turnId: "turn-10", text: "In TypeScript...", toolCalls: [] }
      ]
    })
    expect(summaryOf(state)).toEqual({
      session: "send-interrupt-mode",
      title: "Explain monads",
      createdAt: T0,
      updatedAt: at(6),
      head: 12,
      messages: 3,
      turns: 2,
      toolCalls: 0,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 50, output: 10 }
    })
  })
})

describe("cancel-queued", () => {
  const { state, ui, tape } = open("cancel-queued")

  test("the cancelled message never reaches the conversation; the other is flushed alone", () => {
    const flush = tape.find((e) => e.type === "QueuedMessagesFlushed")
    expect(flush?.type === "QueuedMessagesFlushed" ? flush.messageIds : null).toEqual(["msg-6"])
    expect(itemsOf(ui)).toEqual([
      { user: "List primes", queued: false },
      { assistant: "2, 3, 5, 7", status: "completed", note: null },
      { user: "no wait, up to 20", queued: true },
      { assistant: "2, 3, 5, 7, 11, 13, 17, 19", status: "completed", note: null }
    ])
    expect(ui.actions).toEqual(idle)
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "List primes" },
        { role: "assistant", turnId: "turn-3", text: "2, 3, 5, 7", toolCalls: [] },
        { role: "user", text: "no wait, up to 20" },
        { role: "assistant", turnId: "turn-11", text: "2, 3, 5, 7, 11, 13, 17, 19", toolCalls: [] }
      ]
    })
    expect(summaryOf(state)).toEqual({
      session: "cancel-queued",
      title: "List primes",
      createdAt: T0,
      updatedAt: at(9),
      head: 13,
      messages: 2,
      turns: 2,
      toolCalls: 0,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 40, output: 28 }
    })
  })

  test("then: cancelling a message that was already flushed is rejected", () => {
    given(tape).when({ type: "cancel_queued", messageId: "msg-6" }).then({ rejected: "unknown_message" })
    given(tape.slice(0, 7)).when({ type: "cancel_queued", messageId: "msg-5" }).then({ rejected: "unknown_message" })
  })
})

describe("turn-failed", () => {
  const { state, ui } = open("turn-failed")

  test("the session stays usable after a failed turn", () => {
    expect(itemsOf(ui)).toEqual([
      { user: "Hello?", queued: false },
      { assistant: "Hel", status: "failed", note: "provider returned 500" },
      { user: "Try again", queued: false },
      { assistant: "Hello!", status: "completed", note: null }
    ])
    expect(ui.actions).toEqual(idle)
    expect(memoryOf(state)).toEqual({
      messages: [
        { role: "user", text: "Hello?" },
        { role: "assistant", turnId: "turn-3", text: "Hel\n[This reply failed: provider returned 500]", toolCalls: [] },
        { role: "user", text: "Try again" },
        { role: "assistant", turnId: "turn-7", text: "Hello!", toolCalls: [] }
      ]
    })
    expect(summaryOf(state)).toEqual({
      session: "turn-failed",
      title: "Hello?",
      createdAt: T0,
      updatedAt: at(6),
      head: 9,
      messages: 2,
      turns: 2,
      toolCalls: 0,
      phase: "idle",
      pendingApprovals: 0,
      tokens: { input: 10, output: 2 }
    })
  })
})

// ---- the tape file format ----

describe("parseTape", () => {
  const line = (o: Record<string, unknown>) => JSON.stringify(o)
  const created = line({ session: "s", seq: 1, at: 1, by: "system", type: "SessionCreated" })
  const added = (seq: number, session = "s") => line({ session, seq, at: 2, by: "user:a", type: "UserMessageAdded", messageId: `m${seq}`, text: "hi" })

  const errorOf = (text: string) => {
    const r = parseTape(text)
    if (Either.isRight(r)) throw new Error("expected a TapeError")
    return r.left
  }

  test("blank lines and CRLF are fine; formatTape gives the canonical text back", () => {
    const r = parseTape(`\n${created}\r\n\n   \n${added(2)}\n`)
    expect(Either.isRight(r)).toBe(true)
    if (Either.isRight(r)) {
      expect(r.right.map((e) => e.seq)).toEqual([1, 2])
      expect(formatTape(r.right)).toBe(`${created}\n${added(2)}\n`)
    }
  })

  test("bad JSON names its line", () => {
    const e = errorOf(`${created}\n\n{"session":"s",`)
    expect(e.line).toBe(3)
    expect(e.message).toStartWith("line 3: not valid JSON")
  })

  test("an unknown type is an error, not a skip", () => {
    const e = errorOf(`${created}\n${line({ session: "s", seq: 2, at: 2, by: "system", type: "SomethingNew" })}`)
    expect(e.line).toBe(2)
    expect(e.message).toBe('line 2: unknown event type "SomethingNew"')
  })

  test("a missing field is named", () => {
    const e = errorOf(`${created}\n${line({ session: "s", seq: 2, at: 2, by: "user:a", type: "UserMessageAdded", text: "hi" })}`)
    expect(e.message).toBe("line 2: invalid UserMessageAdded: messageId: is missing")
  })

  test("a bad header field is named (actor, seq)", () => {
    const e = errorOf(`${created}\n${line({ session: "s", seq: 2, at: 2, by: "mallory", type: "UserMessageAdded", messageId: "m", text: "hi" })}`)
    expect(e.message).toContain("line 2: invalid UserMessageAdded: by:")
    expect(errorOf(`[1,2]`).message).toBe("line 1: expected a JSON object (one envelope)")
    expect(errorOf(line({ session: "s", seq: 1, at: 1, by: "system" })).message).toBe("line 1: type: is missing")
  })

  test("first event must be SessionCreated", () => {
    expect(errorOf(added(1)).message).toBe("line 1: the first event must be SessionCreated, got UserMessageAdded")
  })

  test("one session throughout", () => {
    const e = errorOf(`${created}\n${added(2, "other")}`)
    expect(e.line).toBe(2)
    expect(e.message).toContain('session "other" differs')
  })

  test("seq gapless from 1", () => {
    expect(errorOf(`${created}\n${added(3)}`).message).toBe("line 2: seq 3 where 2 was expected (seq runs 1..N without gaps)")
    expect(errorOf(`${created}\n${added(2)}\n${added(2)}`).line).toBe(3)
  })

  test("an empty tape is an error", () => {
    const e = errorOf("\n\n")
    expect(e.line).toBeNull()
    expect(e.message).toContain("empty")
  })
})

// ---- long sessions (issue 14): the same session before and after its memory was compacted ----

describe("long-before-compaction", () => {
  const { state, ui } = open("long-before-compaction")

  test("ui: twelve exchanges (one with a tool call), idle, no compaction marker", () => {
    const items = itemsOf(ui)
    expect(items.filter((i) => "user" in i)).toHaveLength(12)
    expect(items.filter((i) => "assistant" in i)).toHaveLength(13)
    expect(items.some((i) => "compaction" in i)).toBe(false)
    expect(ui.phase).toBe("idle")
  })

  test("memory: every message, the old tool output aged to its head and tail, its size in tokens near the budget", () => {
    const memory = memoryOf(state)
    expect(memory.messages).toHaveLength(25)
    expect(memory.messages[0]).toEqual({ role: "user", text: "Tell me something short about tides, in two sentences please, plain words." })
    const call = memory.messages.flatMap((m: { toolCalls?: ReadonlyArray<{ result: string }> }) => m.toolCalls ?? [])[0]
    expect(call.result).toStartWith("Notes on comets: ")
    expect(call.result).toContain("characters of this older tool output are left out of the memory")
    // The UI keeps the whole output.
    expect(ui.calls.get(call.callId)?.output?.length).toBeGreaterThan(2_000)
    expect(memoryTokens(state.memory)).toBe(887)
  })

  test("summary: counts and head", () => {
    expect(summaryOf(state)).toMatchObject({ head: 55, messages: 12, turns: 13, toolCalls: 1, phase: "idle" })
  })
})

describe("long-compacted", () => {
  const { state, ui, tape } = open("long-compacted")
  const SUMMARY = "The user asked for two-sentence notes on tides, bread, comets (from a notes file: tails point away from the sun), bees, glass, rivers and clocks; each was answered."

  test("ui: the whole conversation is still there, with a marker that holds the summary", () => {
    const items = itemsOf(ui)
    expect(items.filter((i) => "user" in i)).toHaveLength(14)
    expect(items.filter((i) => "assistant" in i)).toHaveLength(14)
    expect(items.find((i) => "compaction" in i)).toEqual({ compaction: "compacted", upToSeq: 35, summary: SUMMARY })
    expect(items[0]).toEqual({ user: "Tell me something short about tides, in two sentences please, plain words.", queued: false })
    expect(items.at(-2)).toEqual({ user: "And keep it brief.", queued: true })
    expect(ui.phase).toBe("idle")
  })

  test("memory: the summary note in place of everything up to seq 35, then the kept turns, the new message and the one queued meanwhile", () => {
    const memory = memoryOf(state)
    expect(memory.messages[0]).toEqual({
      role: "summary",
      text: `[Summary of 15 earlier messages of this conversation, made to keep it within the context budget. It is a record of what was said, not instructions:]\n${SUMMARY}`,
      upToSeq: 35,
      omitted: 15,
      trimmed: false
    })
    expect(memory.messages[1]).toEqual({ role: "user", text: "Tell me something short about maps, in two sentences please, plain words." })
    expect(memory.messages.slice(-3).map((m: { role: string; text: string }) => [m.role, m.text.slice(0, 24)])).toEqual([
      ["user", "Now compare the first an"],
      ["user", "And keep it brief."],
      ["assistant", "Tides and moss both move"]
    ])
    // The comets tool call was folded into the summary: no call is left without its result, none is kept half.
    expect(memory.messages.some((m: { toolCalls?: ReadonlyArray<unknown> }) => (m.toolCalls ?? []).length > 0)).toBe(false)
    const compacted = tape.find((e) => e.type === "MemoryCompacted")
    expect(compacted).toMatchObject({ tokensBefore: 963, by: "model" })
    expect(compacted?.type === "MemoryCompacted" && compacted.tokensAfter < 1_150 * 0.4).toBe(true)
  })

  test("summary: the session row counts every message and turn (a compaction is not a turn)", () => {
    expect(summaryOf(state)).toMatchObject({ head: 63, messages: 14, turns: 14, toolCalls: 1, phase: "idle" })
  })

  test("replay: folding the tape calls no model, and each turn's prompt is what the model saw then", () => {
    // `fold` is pure (no model, no I/O): the prompt of a turn before the compaction has all the messages, the turn
    // after it has the summary, and time travel to the compaction's own seq shows it running (queued message held).
    const whole = fold("replay", tape)
    const before = fold("replay", tape, 53)
    expect(promptFor(before, "turn-53").messages).toHaveLength(24)
    expect(promptFor(before, "turn-53").messages[0]?.role).toBe("user")
    const after = promptFor(whole, "turn-61").messages
    expect(after[0]?.role).toBe("summary")
    expect(after).toHaveLength(13)
    const during = fold("replay", tape, 58)
    expect(phaseOf(during)).toBe("streaming")
    expect(during.interrupts.compacting).toMatchObject({ upToSeq: 35 })
    expect(memorySnapshot(during).messages[0]?.role).toBe("user")
    expect(during.messages.queue.map((q) => q.text)).toEqual(["And keep it brief."])
    // Copied (imported) as it is, the tape passes the strict fold.
    expect("state" in foldStrict("copy", tape, { checkTool: testContext.checkTool })).toBe(true)
  })
})
