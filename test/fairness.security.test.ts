// Issue 10, finding 10: one session cannot starve the others' tools. Session A approves five runaway evals (each
// spins until its time limit); session B's harmless eval must not wait behind them: it runs and finishes while A's
// first ones are still spinning, because each session runs at most CALLS_PER_SESSION calls at once (the rest wait,
// still "approved": queued visibly).
import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { CALLS_PER_SESSION } from "../src/tools/ToolRunner.ts"
import { withPipeline } from "./support/pipeline.ts"

const runaway = "while (true) {}"

describe("fair share of the tool runners", () => {
  test("five runaway evals in one session do not hold up another session's eval", async () => {
    // Every session's first turn plays this entry: call 0 is harmless, calls 1–5 spin until the time limit.
    const script = { turns: [{ text: "Running.", toolCalls: [{ tool: "eval", args: { code: "1+1" } }, ...Array.from({ length: 5 }, () => ({ tool: "eval", args: { code: runaway } }))] }] }
    const out = await withPipeline(script, (p) =>
      Effect.gen(function* () {
        const a = yield* p.create()
        const b = yield* p.create()
        const calls = (tape: ReadonlyArray<Envelope>) => tape.flatMap((e) => (e.type === "ToolCallRequested" ? [e.callId] : []))
        yield* p.submit(a, { type: "send_message", text: "spin" })
        yield* p.submit(b, { type: "send_message", text: "add" })
        const aTape = yield* p.waitFor(a, (t) => t.some((e) => e.type === "TurnCompleted"))
        const bTape = yield* p.waitFor(b, (t) => t.some((e) => e.type === "TurnCompleted"))
        for (const callId of calls(aTape).slice(1)) yield* p.submit(a, { type: "approve", callId })
        yield* p.waitFor(a, (t) => t.filter((e) => e.type === "ToolExecutionStarted").length >= CALLS_PER_SESSION)
        const harmless = calls(bTape)[0]!
        yield* p.submit(b, { type: "approve", callId: harmless })
        yield* p.waitFor(b, (t) => t.some((e) => e.type === "ToolExecutionSucceeded" && e.callId === harmless))
        const aNow = yield* p.tape(a)
        yield* p.submit(a, { type: "interrupt" })
        return {
          aStarted: aNow.filter((e) => e.type === "ToolExecutionStarted").length,
          aDone: aNow.filter((e) => e.type === "ToolExecutionFailed" || e.type === "ToolExecutionSucceeded").length,
          aWaiting: calls(aNow).slice(1).filter((id) => !aNow.some((e) => e.type === "ToolExecutionStarted" && e.callId === id)).length
        }
      })
    )
    // B's call finished while A's first runaway calls were still spinning, and A's others were still waiting.
    expect(out.aDone).toBe(0)
    expect(out.aStarted).toBe(CALLS_PER_SESSION)
    expect(out.aWaiting).toBe(5 - CALLS_PER_SESSION)
  }, 60_000)
})
