// untilClosed (src/session/Bus.ts): the one way a runner learns that the turn or call it runs was closed, here or by
// another process. Over the in-memory store, with "another process" appending to the store directly and the commit
// feed handing this Bus only the newest event of that commit, as src/cluster/Cluster.ts does.
import { expect, test } from "bun:test"
import { Deferred, Effect, Exit, Fiber, Layer, Schedule } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { Bus, layerWith, untilClosed } from "../src/session/Bus.ts"
import { EventStore, type EventStoreShape, StoreError } from "../src/store/EventStore.ts"
import { makeMemory } from "../src/store/memory.ts"

const S = "s1"
const at = 1_700_000_000_000
const created: Envelope = { session: S, seq: 1, at, by: "system", type: "SessionCreated" }
const started: Envelope = { session: S, seq: 2, at, by: "system", type: "TurnStarted", turnId: "turn-2", model: "m" }
/** Another process's one commit: the turn interrupted by a new message, which starts the next turn. */
const otherCommit: ReadonlyArray<Envelope> = [
  { session: S, seq: 3, at, by: "user:b", type: "InterruptRequested", reason: "new message" },
  { session: S, seq: 4, at, by: "user:b", type: "TurnInterrupted", turnId: "turn-2", reason: "new message" },
  { session: S, seq: 5, at, by: "user:b", type: "UserMessageAdded", messageId: "msg-5", text: "new topic" },
  { session: S, seq: 6, at, by: "system", type: "TurnStarted", turnId: "turn-6", model: "m" }
]
const summary = (head: number) => ({
  session: S, title: S, createdAt: at, updatedAt: at, head, messages: 0, turns: 0, toolCalls: 0, phase: "idle" as const, pendingApprovals: 0, tokens: { input: 0, output: 0 }
})
const closesTurn2 = (e: Envelope) => e.type === "TurnInterrupted" && e.turnId === "turn-2"

/** A Bus over a memory store that fails reads while `failing` is set; `failed` counts the reads it failed. */
interface Flaky {
  failing: boolean
  failed: number
  readonly onFail: Array<() => void>
}
const run = <A, E>(body: (ctl: Flaky) => Effect.Effect<A, E, Bus | EventStore>) => {
  const ctl: Flaky = { failing: false, failed: 0, onFail: [] }
  const flaky = (store: EventStoreShape): EventStoreShape => ({
    ...store,
    read: (s, after, limit) =>
      ctl.failing
        ? Effect.suspend(() => {
          ctl.failed++
          for (const f of ctl.onFail) f()
          return Effect.fail(new StoreError({ message: "connection reset", session: s }))
        })
        : store.read(s, after, limit)
  })
  const store = Layer.effect(EventStore, Effect.map(makeMemory, flaky))
  return Effect.runPromise(Effect.scoped(body(ctl).pipe(Effect.provide(Layer.provideMerge(layerWith({ capacity: 16 }), store)))))
}

test("a close another process committed stops the work, though only the commit's newest event reached this process", async () => {
  const exit = await run(() =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const bus = yield* Bus
      yield* store.append(S, 0, [created, started], summary(2))
      const running = yield* Effect.fork(untilClosed(bus, S, 2, closesTurn2)(Effect.never))
      // The watch is subscribed before the other process commits (it then hears of it only through the Bus).
      yield* bus.stats.pipe(Effect.repeat({ until: (st) => st.subscribers > 0, schedule: Schedule.spaced("1 millis") }))
      yield* store.append(S, 2, otherCommit, summary(6))
      yield* bus.publishRemote(otherCommit.slice(-1))
      return yield* Fiber.await(running).pipe(Effect.timeout("2 seconds"))
    })
  )
  expect(Exit.isSuccess(exit)).toBe(true)
})

test("a store read that fails while watching is retried, never taken for a close; the work goes on to its end", async () => {
  const out = await run((ctl) =>
    Effect.gen(function* () {
      const store = yield* EventStore
      const bus = yield* Bus
      yield* store.append(S, 0, [created, started], summary(2))
      const finish = yield* Deferred.make<string>()
      // Resolved when the watch reads again after a failed read: it retried instead of ending the work.
      const retried = yield* Deferred.make<void>()
      ctl.onFail.push(() => {
        if (ctl.failed === 2) {
          ctl.failing = false
          Deferred.unsafeDone(retried, Exit.void)
        }
      })
      ctl.failing = true
      const running = yield* Effect.fork(untilClosed(bus, S, 2, closesTurn2)(Deferred.await(finish)))
      yield* Deferred.await(retried).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the watch never read again") }))
      const stillRunning = (yield* Fiber.poll(running))._tag === "None"
      yield* Deferred.succeed(finish, "done")
      return { stillRunning, result: yield* Fiber.join(running) }
    })
  )
  expect(out).toEqual({ stillRunning: true, result: "done" })
})
