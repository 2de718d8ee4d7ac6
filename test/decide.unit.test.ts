// decide(state, input) specs, Emmett style: given(events).when(input).then(events | rejection), one block per rule of DESIGN.md §2.
// Drafts are compared by type and fields (and `by` where the spec names it); never by `at`/`seq`.
import { describe, expect, test } from "bun:test"
import { Either } from "effect"
import { decide, openCalls } from "../src/domain/decide.ts"
import { phaseOf, uiView } from "../src/domain/projections/ui.ts"
import { initialState } from "../src/domain/state.ts"
import { testContext } from "./support/context.ts"
import { foldGiven, type Given, given } from "./support/given.ts"

const alice = "user:alice"

// ---- histories (seq 1.. in order; ids follow the writer's seq-derived scheme) ----

const created: Given = { type: "SessionCreated" }
/** Streaming turn-3 with some text. head 4 */
const streaming: ReadonlyArray<Given> = [
  created,
  { type: "UserMessageAdded", messageId: "msg-2", text: "hi", by: alice },
  { type: "TurnStarted", turnId: "turn-3", model: "scripted" },
  { type: "AssistantDelta", turnId: "turn-3", text: "Hel", by: "model" }
]
/** Idle after one exchange. head 5 */
const idle: ReadonlyArray<Given> = [...streaming, { type: "TurnCompleted", turnId: "turn-3", by: "model" }]
/** turn-3 completed with call-4 (eval) awaiting approval. head 5 */
const pending: ReadonlyArray<Given> = [
  ...streaming.slice(0, 3),
  { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "eval", args: { code: "1+1" }, by: "model" },
  { type: "TurnCompleted", turnId: "turn-3", by: "model" }
]
/** call-4 approved. head 6 */
const approved: ReadonlyArray<Given> = [...pending, { type: "ToolCallApproved", callId: "call-4", by: alice }]
/** call-4 running. head 7 */
const running: ReadonlyArray<Given> = [...approved, { type: "ToolExecutionStarted", callId: "call-4", by: "tool" }]
/** Two calls of turn-3: call-4 running, call-5 pending. head 7 */
const twoCalls: ReadonlyArray<Given> = [
  ...streaming.slice(0, 3),
  { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "eval", args: { code: "1" }, by: "model" },
  { type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool: "eval", args: { code: "2" }, by: "model" },
  { type: "TurnCompleted", turnId: "turn-3", by: "model" },
  { type: "ToolCallApproved", callId: "call-4", by: alice },
  { type: "ToolExecutionStarted", callId: "call-4", by: "tool" }
]
const queued = (messageId: string, text: string): Given => ({ type: "UserMessageQueued", messageId, text, by: alice })

describe("sessions", () => {
  test("no input is accepted before the session exists", () => {
    given([]).when({ type: "send_message", text: "hi" }).then({ rejected: "unknown_session" })
    given([]).when({ type: "interrupt" }).then({ rejected: "unknown_session" })
  })

  test("create appends SessionCreated, with its title; twice is rejected", () => {
    given([]).when({ type: "create", title: "T" }, "system").then([{ type: "SessionCreated", title: "T", by: "system" }])
    given([created]).when({ type: "create" }, "system").then({ rejected: "already_created" })
  })

  test("an empty or blank message is rejected", () => {
    given([created]).when({ type: "send_message", text: "  \n" }).then({ rejected: "empty_message" })
  })
})

describe("rule 1: messages while busy are queued and flush in order, exactly once, before the next turn", () => {
  test("idle: the message is added and a turn starts in the same append", () => {
    given([created])
      .when({ type: "send_message", text: "hello" })
      .then([
        { type: "UserMessageAdded", messageId: "msg-2", text: "hello", by: alice },
        { type: "TurnStarted", turnId: "turn-3", model: "scripted", by: "system" }
      ])
  })

  test("while a turn streams, a message is queued", () => {
    given(streaming).when({ type: "send_message", text: "wait" }).then([{ type: "UserMessageQueued", messageId: "msg-5", text: "wait", by: alice }])
  })

  test("while a call awaits approval, and while one runs, a message is queued", () => {
    given(pending).when({ type: "send_message", text: "x", mode: "queue" }).then([{ type: "UserMessageQueued", messageId: "msg-6", text: "x" }])
    given(running).when({ type: "send_message", text: "y" }).then([{ type: "UserMessageQueued", messageId: "msg-8", text: "y" }])
  })

  test("the turn ends with no calls: the queue flushes in arrival order, then the next turn starts", () => {
    given([...streaming, queued("msg-5", "one"), queued("msg-6", "two")])
      .when({ type: "model_completed", turnId: "turn-3" }, "model")
      .then([
        { type: "TurnCompleted", turnId: "turn-3", by: "model" },
        { type: "QueuedMessagesFlushed", messageIds: ["msg-5", "msg-6"], by: "system" },
        { type: "TurnStarted", turnId: "turn-9", model: "scripted", by: "system" }
      ])
  })

  test("queued during an approval: flushed after the tool result, right before the loop's TurnStarted", () => {
    given([...running, queued("msg-8", "and then?")])
      .when({ type: "tool_succeeded", callId: "call-4", output: "2" }, "tool")
      .then([
        { type: "ToolExecutionSucceeded", callId: "call-4", output: "2", by: "tool" },
        { type: "QueuedMessagesFlushed", messageIds: ["msg-8"], by: "system" },
        { type: "TurnStarted", turnId: "turn-11", model: "scripted", by: "system" }
      ])
  })

  test("a flushed message is not flushed again; a cancelled one never is", () => {
    const history = [...streaming, queued("msg-5", "one"), queued("msg-6", "two"), { type: "QueuedMessageCancelled" as const, messageId: "msg-5", by: alice }]
    const { state } = given(history)
      .when({ type: "model_completed", turnId: "turn-3" }, "model")
      .then([
        { type: "TurnCompleted", turnId: "turn-3" },
        { type: "QueuedMessagesFlushed", messageIds: ["msg-6"] },
        { type: "TurnStarted", turnId: "turn-10", model: "scripted" }
      ])
    expect(state.messages.queue).toEqual([])
    const next = decide(state, { type: "model_completed", turnId: "turn-10" }, "model", testContext)
    expect(Either.isRight(next) && next.right.map((d) => d.type)).toEqual(["TurnCompleted"])
  })

  test("cancel_queued withdraws a queued message; an unknown or flushed one is rejected", () => {
    given([...streaming, queued("msg-5", "one")])
      .when({ type: "cancel_queued", messageId: "msg-5" })
      .then([{ type: "QueuedMessageCancelled", messageId: "msg-5", by: alice }])
    given(streaming).when({ type: "cancel_queued", messageId: "msg-2" }).then({ rejected: "unknown_message" })
  })

  test("mode interrupt: the interrupt first, then the queue, then the new message, then a turn — one append", () => {
    given([...streaming, queued("msg-5", "earlier")])
      .when({ type: "send_message", text: "now", mode: "interrupt" })
      .then([
        { type: "InterruptRequested", reason: "interrupted by a new message", by: alice },
        { type: "TurnInterrupted", turnId: "turn-3", reason: "interrupted by a new message", by: alice },
        { type: "QueuedMessagesFlushed", messageIds: ["msg-5"], by: "system" },
        { type: "UserMessageAdded", messageId: "msg-9", text: "now", by: alice },
        { type: "TurnStarted", turnId: "turn-10", model: "scripted", by: "system" }
      ])
  })

  test("mode interrupt while idle just sends", () => {
    given(idle)
      .when({ type: "send_message", text: "hey", mode: "interrupt" })
      .then([
        { type: "UserMessageAdded", messageId: "msg-6", text: "hey" },
        { type: "TurnStarted", turnId: "turn-7", model: "scripted" }
      ])
  })
})

describe("rule 2: a call executes only after approval, at most once; approve/reject of a non-pending call is rejected", () => {
  test("approve a pending call", () => {
    given(pending).when({ type: "approve", callId: "call-4" }).then([{ type: "ToolCallApproved", callId: "call-4", by: alice }])
  })

  test("approve with edited args: validated by the tool's schema, stored canonical", () => {
    given(pending).when({ type: "approve", callId: "call-4", args: { code: "2+2" } }).then([{ type: "ToolCallApproved", callId: "call-4", args: { code: "2+2" } }])
    given(pending).when({ type: "approve", callId: "call-4", args: { code: 7 } }).then({ rejected: "invalid_args" })
    given(pending).when({ type: "approve", callId: "call-4", args: { code: "1", extra: true } }).then({ rejected: "invalid_args" })
  })

  test("reject with a reason; a blank reason gets a default", () => {
    given(pending)
      .when({ type: "reject", callId: "call-4", reason: "not now" })
      .then([
        { type: "ToolCallRejected", callId: "call-4", reason: "not now", by: alice },
        // every call of the completed turn is resolved: the loop goes on (rule 3)
        { type: "TurnStarted", turnId: "turn-7", model: "scripted", by: "system" }
      ])
    given(twoCalls).when({ type: "reject", callId: "call-5", reason: "  " }).then([{ type: "ToolCallRejected", callId: "call-5", reason: "no reason given" }])
  })

  test("double approve is rejected (approved, running, finished)", () => {
    given(approved).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
    given(running).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
    given(running).when({ type: "reject", callId: "call-4", reason: "late" }).then({ rejected: "not_pending" })
  })

  test("approve or reject of an unknown call is rejected", () => {
    given(pending).when({ type: "approve", callId: "call-99" }).then({ rejected: "unknown_call" })
    given(pending).when({ type: "reject", callId: "call-99" }).then({ rejected: "unknown_call" })
  })

  test("approve after an interrupt is rejected", () => {
    const interrupted: ReadonlyArray<Given> = [
      ...pending,
      { type: "InterruptRequested", reason: "stop", by: alice },
      { type: "ToolCallRejected", callId: "call-4", reason: "interrupted: stop", by: alice }
    ]
    given(interrupted).when({ type: "approve", callId: "call-4" }).then({ rejected: "not_pending" })
  })

  test("a runner cannot start a call that is not approved, nor start it twice", () => {
    given(pending).when({ type: "tool_started", callId: "call-4" }, "tool").then({ rejected: "stale" })
    given(approved).when({ type: "tool_started", callId: "call-4" }, "tool").then([{ type: "ToolExecutionStarted", callId: "call-4", by: "tool" }])
    given(running).when({ type: "tool_started", callId: "call-4" }, "tool").then({ rejected: "stale" })
  })

  test("a call with an auto policy is approved by the policy in the same append", () => {
    given(streaming)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "read_file", args: { path: "a.txt" } }, "model")
      .then([
        { type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool: "read_file", args: { path: "a.txt" }, by: "model" },
        { type: "ToolCallApproved", callId: "call-5", by: "policy:auto" }
      ])
  })

  test("a call with an ask policy waits, with its description", () => {
    given(streaming)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "1" }, description: "one" }, "model")
      .then([{ type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool: "eval", args: { code: "1" }, description: "one", by: "model" }])
  })

  test("an unknown tool or bad args becomes ToolCallInvalid (fed back), never pending", () => {
    given(streaming)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "rm", args: {} }, "model")
      .then([{ type: "ToolCallInvalid", turnId: "turn-3", callId: "call-5", tool: "rm", error: 'unknown tool "rm"; known tools: eval, read_file', args: {} }])
    const { state } = given(streaming)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: 1 } }, "model")
      .then([
        {
          type: "ToolCallInvalid",
          turnId: "turn-3",
          callId: "call-5",
          tool: "eval",
          error: 'invalid args for eval: { readonly code: string }\n└─ ["code"]\n   └─ Expected string, actual 1',
          args: { code: 1 }
        }
      ])
    expect(state.commands.pending.size).toBe(0)
  })
})

describe("rule 3: the loop back when every call is resolved; no calls, or an interrupt, end it", () => {
  test("the last result of a completed turn starts the next turn", () => {
    given(running)
      .when({ type: "tool_failed", callId: "call-4", error: "boom" }, "tool")
      .then([
        { type: "ToolExecutionFailed", callId: "call-4", error: "boom", by: "tool" },
        { type: "TurnStarted", turnId: "turn-9", model: "scripted", by: "system" }
      ])
  })

  test("a result while another call of the turn is still pending does not loop", () => {
    given(twoCalls).when({ type: "tool_succeeded", callId: "call-4", output: "1" }, "tool").then([{ type: "ToolExecutionSucceeded", callId: "call-4", output: "1" }])
  })

  test("results that arrive while the turn still streams wait for its completion, which then loops", () => {
    const midTurn: ReadonlyArray<Given> = [
      ...streaming.slice(0, 3),
      { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "read_file", args: { path: "a" }, by: "model" },
      { type: "ToolCallApproved", callId: "call-4", by: "policy:auto" },
      { type: "ToolExecutionStarted", callId: "call-4", by: "tool" }
    ]
    given(midTurn).when({ type: "tool_succeeded", callId: "call-4", output: "A" }, "tool").then([{ type: "ToolExecutionSucceeded", callId: "call-4", output: "A" }])
    given([...midTurn, { type: "ToolExecutionSucceeded", callId: "call-4", output: "A", by: "tool" }])
      .when({ type: "model_completed", turnId: "turn-3", usage: { inputTokens: 3, outputTokens: 4 } }, "model")
      .then([
        { type: "TurnCompleted", turnId: "turn-3", usage: { inputTokens: 3, outputTokens: 4 } },
        { type: "TurnStarted", turnId: "turn-9", model: "scripted" }
      ])
  })

  test("a turn with only invalid calls loops at once (the errors go back to the model)", () => {
    given([...streaming, { type: "ToolCallInvalid", turnId: "turn-3", callId: "call-5", tool: "rm", error: "unknown", by: "model" }])
      .when({ type: "model_completed", turnId: "turn-3" }, "model")
      .then([
        { type: "TurnCompleted", turnId: "turn-3" },
        { type: "TurnStarted", turnId: "turn-7", model: "scripted" }
      ])
  })

  test("a turn with no calls ends the loop", () => {
    given(streaming).when({ type: "model_completed", turnId: "turn-3" }, "model").then([{ type: "TurnCompleted", turnId: "turn-3", by: "model" }])
  })

  test("a failed turn ends the loop", () => {
    given(streaming)
      .when({ type: "model_failed", turnId: "turn-3", error: "500", retryable: true }, "model")
      .then([{ type: "TurnFailed", turnId: "turn-3", error: "500", retryable: true, by: "model" }])
  })

  test("an interrupt ends the loop, but queued messages then start the next turn", () => {
    given(running)
      .when({ type: "interrupt", reason: "stop" })
      .then([
        { type: "InterruptRequested", reason: "stop" },
        { type: "ToolExecutionCancelled", callId: "call-4", reason: "interrupted: stop", outcome: "unknown" }
      ])
    given([...running, queued("msg-8", "next")])
      .when({ type: "interrupt", reason: "stop" })
      .then([
        { type: "InterruptRequested", reason: "stop" },
        { type: "ToolExecutionCancelled", callId: "call-4", reason: "interrupted: stop", outcome: "unknown" },
        { type: "QueuedMessagesFlushed", messageIds: ["msg-8"], by: "system" },
        { type: "TurnStarted", turnId: "turn-12", model: "scripted", by: "system" }
      ])
  })

  test("a cancellation reported by the runner ends the loop", () => {
    given(running)
      .when({ type: "tool_cancelled", callId: "call-4", reason: "timeout", outcome: "unknown" }, "tool")
      .then([{ type: "ToolExecutionCancelled", callId: "call-4", reason: "timeout", outcome: "unknown", by: "tool" }])
  })

  // BUG (src/domain/decide.ts, settleInto, `endsLoop`): whether a cancellation ends the loop is judged only from the
  // drafts of the current input, so it depends on the order the runner reports in. Two running calls of a completed
  // turn: "call-4 cancelled, then call-5 succeeded" appends a TurnStarted (the model is called again), while
  // "call-5 succeeded, then call-4 cancelled" does not. Expected: the same outcome either way (no loop, as in the
  // second order, since a cancellation ends the loop). Flip to `test` once fixed.
  const bothRunning: ReadonlyArray<Given> = [
    ...streaming.slice(0, 3),
    { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "read_file", args: { path: "a" }, by: "model" },
    { type: "ToolCallApproved", callId: "call-4", by: "policy:auto" },
    { type: "ToolCallRequested", turnId: "turn-3", callId: "call-6", tool: "read_file", args: { path: "b" }, by: "model" },
    { type: "ToolCallApproved", callId: "call-6", by: "policy:auto" },
    { type: "TurnCompleted", turnId: "turn-3", by: "model" },
    { type: "ToolExecutionStarted", callId: "call-4", by: "tool" },
    { type: "ToolExecutionStarted", callId: "call-6", by: "tool" }
  ]
  test("a cancellation reported last ends the loop", () => {
    given([...bothRunning, { type: "ToolExecutionSucceeded", callId: "call-6", output: "B", by: "tool" }])
      .when({ type: "tool_cancelled", callId: "call-4", reason: "runner gave up", outcome: "unknown" }, "tool")
      .then([{ type: "ToolExecutionCancelled", callId: "call-4", reason: "runner gave up", outcome: "unknown" }])
  })
  test("a cancellation reported first ends the loop too (the order of reports must not matter)", () => {
    given([...bothRunning, { type: "ToolExecutionCancelled", callId: "call-4", reason: "runner gave up", outcome: "unknown", by: "tool" }])
      .when({ type: "tool_succeeded", callId: "call-6", output: "B" }, "tool")
      .then([{ type: "ToolExecutionSucceeded", callId: "call-6", output: "B" }])
  })

  test("openCalls lists what the turn still waits for", () => {
    expect(openCalls(foldGiven(twoCalls), "turn-3")).toEqual(["call-4", "call-5"])
    expect(openCalls(foldGiven(idle), "turn-3")).toEqual([])
  })
})

describe("rule 4: interrupt", () => {
  test("with nothing running it is rejected and appends nothing", () => {
    given(idle).when({ type: "interrupt", reason: "x" }).then({ rejected: "nothing_to_interrupt" })
    given([created]).when({ type: "interrupt" }).then({ rejected: "nothing_to_interrupt" })
  })

  test("while streaming: InterruptRequested + TurnInterrupted; the partial text stays", () => {
    const { state } = given(streaming)
      .when({ type: "interrupt", reason: "too long" })
      .then([
        { type: "InterruptRequested", reason: "too long", by: alice },
        { type: "TurnInterrupted", turnId: "turn-3", reason: "too long", by: alice }
      ])
    const item = state.messages.items[1]
    expect(item?.kind === "assistant" ? [item.text, item.status] : null).toEqual(["Hel", "interrupted"])
  })

  test("one append stops everything: streaming turn, pending, approved and running calls", () => {
    const everything: ReadonlyArray<Given> = [
      ...streaming.slice(0, 3),
      { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "eval", args: { code: "1" }, by: "model" },
      { type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool: "eval", args: { code: "2" }, by: "model" },
      { type: "ToolCallRequested", turnId: "turn-3", callId: "call-6", tool: "eval", args: { code: "3" }, by: "model" },
      { type: "ToolCallApproved", callId: "call-4", by: alice },
      { type: "ToolExecutionStarted", callId: "call-4", by: "tool" },
      { type: "ToolCallApproved", callId: "call-5", by: alice }
    ]
    given(everything)
      .when({ type: "interrupt" })
      .then([
        { type: "InterruptRequested", reason: "stopped by the user", by: alice },
        { type: "TurnInterrupted", turnId: "turn-3", reason: "stopped by the user" },
        { type: "ToolCallRejected", callId: "call-6", reason: "interrupted: stopped by the user" },
        { type: "ToolExecutionCancelled", callId: "call-4", reason: "interrupted: stopped by the user", outcome: "unknown" },
        { type: "ToolExecutionCancelled", callId: "call-5", reason: "interrupted: stopped by the user", outcome: "not_run" }
      ])
  })

  test("during an approval it rejects the pending call", () => {
    given(pending)
      .when({ type: "interrupt", reason: "no" })
      .then([
        { type: "InterruptRequested", reason: "no" },
        { type: "ToolCallRejected", callId: "call-4", reason: "interrupted: no" }
      ])
  })
})

describe("rule 5: reports for a turn or call no longer active are dropped", () => {
  const afterInterrupt: ReadonlyArray<Given> = [
    ...running,
    { type: "InterruptRequested", reason: "stop", by: alice },
    { type: "ToolExecutionCancelled", callId: "call-4", reason: "interrupted: stop", outcome: "unknown", by: alice }
  ]

  test("model reports for a finished turn", () => {
    given(idle).when({ type: "model_delta", turnId: "turn-3", text: "late" }, "model").then({ rejected: "stale" })
    given(idle).when({ type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "1" } }, "model").then({ rejected: "stale" })
    given(idle).when({ type: "model_completed", turnId: "turn-3" }, "model").then({ rejected: "stale" })
    given(idle).when({ type: "model_failed", turnId: "turn-3", error: "e", retryable: false }, "model").then({ rejected: "stale" })
    given(streaming).when({ type: "model_delta", turnId: "turn-1", text: "other turn" }, "model").then({ rejected: "stale" })
  })

  test("tool reports for a cancelled or unknown call", () => {
    given(afterInterrupt).when({ type: "tool_succeeded", callId: "call-4", output: "late" }, "tool").then({ rejected: "stale" })
    given(afterInterrupt).when({ type: "tool_failed", callId: "call-4", error: "late" }, "tool").then({ rejected: "stale" })
    given(afterInterrupt).when({ type: "tool_cancelled", callId: "call-4", reason: "x", outcome: "unknown" }, "tool").then({ rejected: "stale" })
    given(approved).when({ type: "tool_succeeded", callId: "call-4", output: "never started" }, "tool").then({ rejected: "stale" })
    given(running).when({ type: "tool_succeeded", callId: "call-99", output: "?" }, "tool").then({ rejected: "stale" })
  })

  test("an empty delta appends nothing", () => {
    given(streaming).when({ type: "model_delta", turnId: "turn-3", text: "" }, "model").then([])
  })
})

describe("rule 6: close_open on restart", () => {
  const restart = { type: "close_open", reason: "restart", approved: "keep", settle: true } as const

  test("the streaming turn is interrupted with reason restart", () => {
    given(streaming).when(restart, "system").then([{ type: "TurnInterrupted", turnId: "turn-3", reason: "restart", by: "system" }])
  })

  test("a running execution is cancelled with outcome unknown; pending approvals stay pending", () => {
    const { state } = given(twoCalls)
      .when(restart, "system")
      .then([{ type: "ToolExecutionCancelled", callId: "call-4", reason: "restart", outcome: "unknown", by: "system" }])
    expect([...state.commands.pending]).toEqual(["call-5"])
  })

  test("approved-but-not-started calls are kept, cancelled (not run), or reopened for a new approval", () => {
    given(approved).when(restart, "system").then({ rejected: "nothing_open" })
    given(approved)
      .when({ ...restart, approved: "cancel" }, "system")
      .then([{ type: "ToolExecutionCancelled", callId: "call-4", reason: "restart", outcome: "not_run" }])
    const { state } = given(approved)
      .when({ ...restart, reason: "import", approved: "reopen", settle: false }, "system")
      .then([{ type: "ToolCallReopened", callId: "call-4", reason: "approved before the import; it needs a new approval here" }])
    expect(state.commands.calls.get("call-4")?.status).toBe("pending")
    expect([...state.commands.pending]).toEqual(["call-4"])
    expect(state.commands.active.size).toBe(0)
  })

  test("nothing open is rejected", () => {
    given(idle).when(restart, "system").then({ rejected: "nothing_open" })
    given(pending).when(restart, "system").then({ rejected: "nothing_open" })
  })

  test("settle lets queued messages start a turn; without it the queue waits", () => {
    const withQueue = [...streaming, queued("msg-5", "q")]
    given(withQueue)
      .when(restart, "system")
      .then([
        { type: "TurnInterrupted", turnId: "turn-3", reason: "restart" },
        { type: "QueuedMessagesFlushed", messageIds: ["msg-5"] },
        { type: "TurnStarted", turnId: "turn-8", model: "scripted" }
      ])
    given(withQueue).when({ ...restart, reason: "fork", settle: false }, "system").then([{ type: "TurnInterrupted", turnId: "turn-3", reason: "fork" }])
  })
})

describe("decide is pure", () => {
  test("the same state and input give the same drafts, and the state is untouched", () => {
    const s = foldGiven([...running, queued("msg-8", "q")])
    const before = JSON.stringify({ head: s.head, queue: s.messages.queue, pending: [...s.commands.pending], active: [...s.commands.active] })
    const a = decide(s, { type: "interrupt" }, alice, testContext)
    const b = decide(s, { type: "interrupt" }, alice, testContext)
    expect(a).toEqual(b)
    expect(JSON.stringify({ head: s.head, queue: s.messages.queue, pending: [...s.commands.pending], active: [...s.commands.active] })).toBe(before)
    expect(Either.isLeft(decide(initialState("x"), { type: "interrupt" }, alice, testContext))).toBe(true)
  })
})

describe("abandon_turn / abandon_call (a process died: lease expired, or shutdown)", () => {
  test("abandon_turn interrupts the streaming turn with the reason; for any other turn it is stale", () => {
    const turnId = "turn-3"
    given(streaming).when({ type: "abandon_turn", turnId, reason: "restart" }, "system").then([{ type: "TurnInterrupted", turnId, reason: "restart" }])
    given(streaming).when({ type: "abandon_turn", turnId: "turn-999", reason: "restart" }, "system").then({ rejected: "stale" })
  })
  test("abandon_call cancels a running call with outcome unknown; an approved-but-not-started call is stale (it goes back to the queue)", () => {
    const callId = "call-4"
    given(running).when({ type: "abandon_call", callId, reason: "restart" }, "system").then([{ type: "ToolExecutionCancelled", callId, reason: "restart", outcome: "unknown" }])
    given(approved).when({ type: "abandon_call", callId, reason: "restart" }, "system").then({ rejected: "stale" })
  })
})

describe("the loop is bounded (issue 11): LoopStopped instead of another turn", () => {
  const limited = { ...testContext, limits: { maxTurnsPerMessage: 2, maxInvalidStreak: 2, maxCallsPerTurn: 2 } }
  /** After the user's message, turn-3 asked for call-4 (approved, run) and turn-8 asked for call-9 (running). head 10 */
  const secondRound: ReadonlyArray<Given> = [
    ...running,
    { type: "ToolExecutionSucceeded", callId: "call-4", output: "2", by: "tool" },
    { type: "TurnStarted", turnId: "turn-8", model: "scripted" },
    { type: "ToolCallRequested", turnId: "turn-8", callId: "call-9", tool: "eval", args: { code: "2+2" }, by: "model" },
    { type: "TurnCompleted", turnId: "turn-8", by: "model" },
    { type: "ToolCallApproved", callId: "call-9", by: alice },
    { type: "ToolExecutionStarted", callId: "call-9", by: "tool" }
  ]

  test("after maxTurnsPerMessage model turns since the user's message, the last result stops the loop", () => {
    const { state } = given(secondRound, limited)
      .when({ type: "tool_succeeded", callId: "call-9", output: "4" }, "tool")
      .then([
        { type: "ToolExecutionSucceeded", callId: "call-9", output: "4" },
        { type: "LoopStopped", reason: "turn_limit", turns: 2, by: "system" }
      ])
    expect(state.interrupts.streaming).toBeNull()
    // The session stays usable: a new message starts a turn, and the count starts again.
    const next = decide(state, { type: "send_message", text: "go on" }, alice, limited)
    expect(Either.getOrThrow(next).map((d) => d.type)).toEqual(["UserMessageAdded", "TurnStarted"])
  })

  test("below the limit the loop goes on", () => {
    given(running, limited)
      .when({ type: "tool_succeeded", callId: "call-4", output: "2" }, "tool")
      .then([{ type: "ToolExecutionSucceeded", callId: "call-4", output: "2" }, { type: "TurnStarted", turnId: "turn-9", model: "scripted" }])
  })

  test("maxInvalidStreak replies in a row with only invalid calls stop the loop", () => {
    const badTurn = (turn: number): ReadonlyArray<Given> => [
      { type: "TurnStarted", turnId: `turn-${turn}`, model: "scripted" },
      { type: "ToolCallInvalid", turnId: `turn-${turn}`, callId: `call-${turn + 1}`, tool: "rm", error: "unknown tool", by: "model" }
    ]
    const history: ReadonlyArray<Given> = [
      created,
      { type: "UserMessageAdded", messageId: "msg-2", text: "hi", by: alice },
      ...badTurn(3),
      { type: "TurnCompleted", turnId: "turn-3", by: "model" },
      ...badTurn(6)
    ]
    const generous = { ...testContext, limits: { maxTurnsPerMessage: 25, maxInvalidStreak: 2 } }
    given(history, generous)
      .when({ type: "model_completed", turnId: "turn-6" }, "model")
      .then([{ type: "TurnCompleted", turnId: "turn-6" }, { type: "LoopStopped", reason: "invalid_calls", turns: 2 }])
    // One bad reply alone still loops, so the model can correct itself.
    given(history.slice(0, 4), generous)
      .when({ type: "model_completed", turnId: "turn-3" }, "model")
      .then([{ type: "TurnCompleted", turnId: "turn-3" }, { type: "TurnStarted", turnId: "turn-6", model: "scripted" }])
  })

  test("calls per reply are capped: the first past the cap is answered as invalid, later ones are dropped", () => {
    const history: ReadonlyArray<Given> = [
      ...streaming.slice(0, 3),
      { type: "ToolCallRequested", turnId: "turn-3", callId: "call-4", tool: "eval", args: { code: "1" }, by: "model" },
      { type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool: "eval", args: { code: "2" }, by: "model" }
    ]
    given(history, limited)
      .when({ type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "3" } }, "model")
      .then([
        {
          type: "ToolCallInvalid",
          turnId: "turn-3",
          callId: "call-6",
          tool: "eval",
          error: "more than 2 tool calls in one reply: this one and the rest were not run; make fewer calls",
          args: { code: "3" }
        }
      ])
    const capped = [...history, { type: "ToolCallInvalid", turnId: "turn-3", callId: "call-6", tool: "eval", error: "cap", by: "model" } as const]
    given(capped, limited).when({ type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "4" } }, "model").then({ rejected: "too_many_calls" })
  })

  test("an invalid call keeps what the model sent, cut when it is long", () => {
    const huge = { code: "x".repeat(10_000) }
    const { drafts } = given(streaming).when({ type: "model_tool_call", turnId: "turn-3", tool: "rm", args: huge }, "model").then([
      { type: "ToolCallInvalid", turnId: "turn-3", callId: "call-5", tool: "rm", error: 'unknown tool "rm"; known tools: eval, read_file', args: expect.stringContaining("… [cut: 10011 characters]") }
    ])
    expect(String(drafts[0] && "args" in drafts[0] ? drafts[0].args : "").length).toBeLessThan(4_200)
  })
})

describe("retry_turn and rename (issue 13)", () => {
  const failed: ReadonlyArray<Given> = [...streaming, { type: "TurnFailed", turnId: "turn-3", error: "down", retryable: true, by: "model" }]

  test("the last reply, failed, interrupted or completed, runs again from the same memory", () => {
    const { state } = given(failed)
      .when({ type: "retry_turn", turnId: "turn-3" })
      .then([{ type: "TurnStarted", turnId: "turn-6", model: "scripted", retryOf: "turn-3", by: "system" }])
    // The memory the new turn sees is the one turn-3 saw: the user's message, and no trace of the failed reply.
    const memory = state.memory.messages.map((m) => (m.role === "assistant" ? `assistant:${m.turnId}` : `${m.role}:${m.text}`))
    expect(memory).toEqual(["user:hi", "assistant:turn-6"])
    // The chat keeps the failed reply, marked as retried; the scripted model replays its entry.
    const old = state.messages.items.find((i) => i.kind === "assistant" && i.turnId === "turn-3")
    expect(old).toMatchObject({ retriedBy: "turn-6", status: "failed" })
    expect(state.counters.entries.get("turn-6")).toBe(state.counters.entries.get("turn-3"))
    given(idle).when({ type: "retry_turn", turnId: "turn-3" }).then([{ type: "TurnStarted", turnId: "turn-6", model: "scripted", retryOf: "turn-3" }])
  })

  test("only the last reply, and only when nothing runs", () => {
    given(streaming).when({ type: "retry_turn", turnId: "turn-3" }).then({ rejected: "busy" })
    given(failed).when({ type: "retry_turn", turnId: "turn-9" }).then({ rejected: "not_last_turn" })
    given(pending).when({ type: "retry_turn", turnId: "turn-3" }).then({ rejected: "busy" })
    given([created]).when({ type: "retry_turn", turnId: "turn-3" }).then({ rejected: "not_last_turn" })
  })

  test("rename sets the title; a blank one is refused", () => {
    const { state } = given(idle).when({ type: "rename", title: "  My   chat " }).then([{ type: "SessionRenamed", title: "My chat", by: alice }])
    expect(state.counters.title).toBe("My chat")
    given(idle).when({ type: "rename", title: "   " }).then({ rejected: "empty_title" })
  })
})

describe("phase priority (UI view and summary)", () => {
  test("a call awaiting approval while another runs: phase executing, the pending one still offered for approval", () => {
    const s = foldGiven(twoCalls)
    const ui = uiView(s)
    expect(ui.phase).toBe("executing")
    expect(ui.pendingApprovals.map((c) => c.callId)).toEqual(["call-5"])
    expect(ui.actions).toMatchObject({ canApprove: true, canReject: true, canInterrupt: true })
    expect(phaseOf(foldGiven(streaming))).toBe("streaming")
    expect(phaseOf(foldGiven(pending))).toBe("awaiting_approval")
    expect(phaseOf(foldGiven(idle))).toBe("idle")
  })
})
