// Issue 10, finding 3: a tape no live session could produce is refused by the strict fold (import and fork), naming
// the event and the reason. Every fixture (made by the real decide) passes; each forgery below is one that was accepted.
import { describe, expect, test } from "bun:test"
import { foldStrict } from "../src/domain/admissible.ts"
import type { Envelope } from "../src/domain/Event.ts"
import { checkTool } from "./support/context.ts"
import { fixtureNames, loadTape } from "./support/tapes.ts"

const strict = (tape: ReadonlyArray<Envelope>) => foldStrict("s", tape, { checkTool })

/** `loadTape(name)` with the events from index `at` replaced by `events` (renumbered from there). */
const forge = (name: string, at: number, events: ReadonlyArray<Record<string, unknown>>): ReadonlyArray<Envelope> => {
  const tape = loadTape(name)
  const prefix = tape.slice(0, at)
  const last = prefix[prefix.length - 1]!
  const added = events.map((e, i) => ({ session: last.session, seq: at + i + 1, at: last.at, ...e }) as unknown as Envelope)
  return [...prefix, ...added]
}

const refusal = (tape: ReadonlyArray<Envelope>): string => {
  const r = strict(tape)
  if (!("refused" in r)) throw new Error("the forged tape was accepted")
  return `${r.refused.type}: ${r.refused.reason}`
}

describe("the strict fold", () => {
  test("every fixture (recorded by the real writer's decide) is admissible", () => {
    for (const name of fixtureNames()) expect({ name, result: "refused" in strict(loadTape(name)) }).toEqual({ name, result: false })
  })

  // approval-pending: seq 5 requests call-5 (eval), seq 6 completes the turn; the call is pending.
  test("an approval by a forged actor (policy:admin) is refused; a policy approval must follow its request", () => {
    expect(refusal(forge("approval-pending", 6, [{ by: "policy:admin", type: "ToolCallApproved", callId: "call-5" }]))).toContain("policy:admin")
    expect(refusal(forge("approval-pending", 6, [{ by: "policy:auto", type: "ToolCallApproved", callId: "call-5" }]))).toContain("must follow its request")
  })

  test("a tool result with no request or approval is refused", () => {
    expect(refusal(forge("plain-chat", 4, [{ by: "tool", type: "ToolExecutionSucceeded", callId: "call-9", output: "x" }]))).toContain("not running")
    expect(refusal(forge("approval-pending", 6, [{ by: "tool", type: "ToolExecutionStarted", callId: "call-5" }]))).toContain("not approved")
  })

  test("two SessionCreated, and anything before SessionCreated, are refused", () => {
    expect(refusal(forge("plain-chat", 2, [{ by: "system", type: "SessionCreated" }]))).toContain("one SessionCreated")
    const headless = loadTape("plain-chat").slice(1).map((e, i) => ({ ...e, seq: i + 1 }))
    expect(refusal(headless)).toContain("first event must be SessionCreated")
  })

  test("two turns open at once are refused", () => {
    // plain-chat: seq 3 starts turn-3, which streams until its TurnCompleted.
    expect(refusal(forge("plain-chat", 4, [{ by: "system", type: "TurnStarted", turnId: "turn-5", model: "scripted" }]))).toContain("still streaming")
  })

  test("requests for unknown tools or with invalid args are refused", () => {
    const call = (tool: string, args: unknown) => [{ by: "model", type: "ToolCallRequested", turnId: "turn-3", callId: "call-5", tool, args }]
    expect(refusal(forge("plain-chat", 4, call("rm", { path: "/" })))).toContain('unknown tool "rm"')
    expect(refusal(forge("plain-chat", 4, call("eval", { code: 42 })))).toContain("invalid args for eval")
  })

  test("a model that speaks for the user, time going back, and over-long texts are refused", () => {
    expect(refusal(forge("plain-chat", 4, [{ by: "model", type: "ToolCallRejected", callId: "call-5", reason: "x" }]))).toContain("cannot be caused by")
    const back = forge("plain-chat", 4, [{ by: "model", type: "AssistantDelta", turnId: "turn-3", text: "x", at: 5 }])
    expect(refusal(back)).toContain("goes back in time")
    const idle = loadTape("plain-chat")
    const long = forge("plain-chat", idle.length, [{ by: "user:x", type: "UserMessageAdded", messageId: `msg-${idle.length + 1}`, text: "y".repeat(100_001) }])
    expect(refusal(long)).toContain("longer than")
  })

  test("the refusal names the event's position, seq and type", () => {
    const r = strict(forge("approval-pending", 6, [{ by: "policy:admin", type: "ToolCallApproved", callId: "call-5" }]))
    expect(r).toMatchObject({ refused: { index: 7, seq: 7, type: "ToolCallApproved" } })
  })
})
