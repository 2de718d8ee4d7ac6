// A ToolExecutionStarted whose write was stored although the store answered with an error (the COMMIT went through,
// its answer was lost; the chaos test cuts connections at such moments). The runner's retry then finds the call
// already running: it must not run it (it cannot know whose start that was) and must not leave it running with no one
// on it: it cancels it, outcome unknown.
import { expect, test } from "bun:test"
import { Effect, Either, Layer } from "effect"
import * as Leases from "../src/cluster/Leases.ts"
import { layer as busLayer } from "../src/session/Bus.ts"
import { layer as writerLayer, SessionWriter, WriterContext } from "../src/session/SessionWriter.ts"
import { EventStore, type EventStoreShape, StoreError } from "../src/store/EventStore.ts"
import { makeMemory } from "../src/store/memory.ts"
import { ToolCatalogue } from "../src/tools/catalogue.ts"
import { executeCall } from "../src/tools/ToolRunner.ts"
import { checkTool, testContext } from "./support/context.ts"

test("a start stored behind a failed write is cancelled (outcome unknown), and the tool is not run", async () => {
  let lose = false
  let runs = 0
  /** Stores the next append that starts a call, then answers as if the connection dropped before the commit's reply. */
  const losesAnswer = (store: EventStoreShape): EventStoreShape => ({
    ...store,
    append: (s, h, events, summary) =>
      lose && events.some((e) => e.type === "ToolExecutionStarted")
        ? Effect.zipRight(
          Effect.zipRight(store.append(s, h, events, summary), Effect.sync(() => (lose = false))),
          Effect.fail(new StoreError({ message: "connection reset while committing", session: s }))
        )
        : store.append(s, h, events, summary)
  })
  const tools = Layer.succeed(ToolCatalogue, {
    check: checkTool,
    specs: () => [],
    list: () => ({ tools: [], servers: [] }),
    run: () =>
      Effect.sync(() => {
        runs++
        return { output: "ran", truncated: false }
      })
  })
  const store = Layer.effect(EventStore, Effect.map(makeMemory, losesAnswer))
  const layer = Layer.mergeAll(
    writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(store, Layer.succeed(WriterContext, testContext)))),
    tools,
    Leases.layerNone
  )
  const out = await Effect.runPromise(
    Effect.gen(function* () {
      const writer = yield* SessionWriter
      const events = yield* EventStore
      const session = yield* writer.create()
      yield* writer.submit(session, { type: "send_message", text: "what is 6*7?" }, "user:alice")
      yield* writer.submit(session, { type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "6*7" } }, "model")
      yield* writer.submit(session, { type: "model_completed", turnId: "turn-3" }, "model")
      yield* writer.submit(session, { type: "approve", callId: "call-4" }, "user:alice")
      lose = true
      const run = yield* Effect.either(executeCall({ session, callId: "call-4", tool: "eval", args: { code: "6*7" } }).pipe(Effect.timeout("10 seconds")))
      return { run: Either.isLeft(run) ? run.left._tag : "ok", tape: yield* events.read(session, 0) }
    }).pipe(Effect.provide(layer), Effect.scoped)
  )
  const ofCall = out.tape.filter((e) => "callId" in e && e.callId === "call-4").map((e) => (e.type === "ToolExecutionCancelled" ? `${e.type}:${e.outcome}` : e.type))
  expect(ofCall).toEqual(["ToolCallRequested", "ToolCallApproved", "ToolExecutionStarted", "ToolExecutionCancelled:unknown"])
  expect(runs).toBe(0)
  expect(out.run).toBe("Rejection")
})
