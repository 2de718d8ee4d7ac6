// Found by the chaos test: a turn (or a call) that another process of a cluster closes must stop here too. The commit
// feed hands this process only the newest event of another process's commit (the Bus heals what a session subscriber
// misses); a runner that looked only at those batches for closes missed a TurnInterrupted followed, in the same commit,
// by a new message and its TurnStarted, and its provider call went on to the end (a stall: forever).
import { expect, test } from "bun:test"
import { Context, Effect, Layer } from "effect"
import type { EndpointEvent, Script } from "../src/llm/offline.ts"
import { layer as busLayer } from "../src/session/Bus.ts"
import { layer as writerLayer, SessionWriter, WriterContext } from "../src/session/SessionWriter.ts"
import { EventStore } from "../src/store/EventStore.ts"
import { testContext } from "./support/context.ts"
import { TEST_CLIENT, withPipeline } from "./support/pipeline.ts"

test("a turn another process interrupts stops its provider call here, though only its commit's newest event arrives", async () => {
  const script: Script = { turns: [{ text: "word ".repeat(300), chunkChars: 2, delayMs: 15 }, { text: "Fresh start." }] }
  const closed = await withPipeline(script, (p) =>
    Effect.gen(function* () {
      const session = yield* p.create()
      yield* p.submit(session, { type: "send_message", text: "Talk for a long time" })
      const streaming = yield* p.waitFor(session, (t) => t.some((e) => e.type === "AssistantDelta"))
      const turn = streaming.find((e) => e.type === "TurnStarted")
      if (turn?.type !== "TurnStarted") throw new Error("no turn")
      // Another process: its own writer and Bus over the same store. Its one commit is InterruptRequested,
      // TurnInterrupted, UserMessageAdded, TurnStarted.
      const other = yield* Layer.build(
        writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(Layer.succeed(EventStore, p.store), Layer.succeed(WriterContext, testContext))))
      )
      const ack = yield* Context.get(other, SessionWriter).submit(session, { type: "send_message", text: "Stop, new topic", mode: "interrupt" }, TEST_CLIENT)
      expect(ack.events.map((e) => e.type)).toEqual(["InterruptRequested", "TurnInterrupted", "UserMessageAdded", "TurnStarted"])
      // What this process's commit feed delivers of it: the newest event only.
      yield* p.bus.publishRemote(ack.events.slice(-1))
      return yield* p.endpoint
        .waitFor((e): e is Extract<EndpointEvent, { type: "closed" }> => e.type === "closed" && e.turnKey === turn.turnId)
        .pipe(Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("the interrupted turn's provider call is still streaming") }))
    }).pipe(Effect.scoped)
  )
  expect(closed.outcome).toBe("aborted")
  expect(closed.chunksSent).toBeLessThan(closed.chunksTotal)
}, 20_000)
