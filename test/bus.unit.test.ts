// The Bus over the in-memory EventStore: catch-up then live, gapless and without duplicates, healing from the store.
import { describe, expect, test } from "bun:test"
import { Chunk, Deferred, Effect, Fiber, Layer, type Scope, Stream } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { message, summaryOf } from "./support/rows.ts"
import { Bus, type FollowSink, layerWith } from "../src/session/Bus.ts"
import { EventStore, type EventStoreShape, StoreError } from "../src/store/EventStore.ts"
import { layerMemory } from "../src/store/memory.ts"

// ---- local builders ----

/** What the session writer does: append a batch at the current head, then publish it. Returns the new head. */
const commit = (session: string, count: number) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const bus = yield* Bus
    const head = yield* store.head(session)
    const batch = Array.from({ length: count }, (_, i) => message(session, head + i + 1))
    yield* store.append(session, head, batch, summaryOf(session, head + count))
    yield* bus.publish(batch)
    return head + count
  })

/** Commits until `session` reaches `target`, in batches of 1 to `maxBatch`, yielding between them so subscribers interleave. */
const writeUntil = (
  session: string,
  target: number,
  onHead: (head: number) => Effect.Effect<void, never, Bus | EventStore | Scope.Scope> = () => Effect.void,
  maxBatch = 3
) =>
  Effect.gen(function*() {
    let head = yield* Effect.flatMap(EventStore, (store) => store.head(session))
    while (head < target) {
      head = yield* commit(session, Math.min(1 + (head % maxBatch), target - head))
      yield* onHead(head)
      yield* Effect.yieldNow()
    }
  })

const seqs = (events: Iterable<Envelope>) => Array.from(events, (e) => e.seq)
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)

/** Collects a session's stream until it reaches `last`. */
const collectUntil = <E>(stream: Stream.Stream<Envelope, E>, last: number) =>
  stream.pipe(
    Stream.takeUntil((e) => e.seq >= last),
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray)
  )

const run = <A, E>(effect: Effect.Effect<A, E, Bus | EventStore | Scope.Scope>, capacity = 1024, store: Layer.Layer<EventStore> = layerMemory): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(effect).pipe(
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("bus test timed out") }),
      Effect.provide(layerWith({ capacity, pageSize: 16 }).pipe(Layer.provideMerge(store)))
    )
  )

/** A follower's sink that records what it is handed; `ready` and `event` can be made to refuse or throw. */
const recorder = () => {
  const got: Array<number> = []
  const failures: Array<string> = []
  const ctl = { ready: true, throwAt: -1 }
  const sink: FollowSink = {
    event: (e) => {
      if (e.seq === ctl.throwAt) throw new Error(`sink broke at ${e.seq}`)
      got.push(e.seq)
    },
    ready: () => ctl.ready,
    failed: (reason) => {
      failures.push(reason._tag === "StoreError" ? `store: ${reason.message}` : `defect: ${String(reason.cause)}`)
    }
  }
  return { got, failures, ctl, sink }
}

/** The memory store with its reads passed through `wrap` (to hold or fail them). */
const readsThrough = (
  wrap: (read: Effect.Effect<ReadonlyArray<Envelope>, StoreError>, session: string) => Effect.Effect<ReadonlyArray<Envelope>, StoreError>
): Layer.Layer<EventStore> =>
  Layer.effect(
    EventStore,
    Effect.map(EventStore, (store): EventStoreShape => ({ ...store, read: (s, after, limit) => wrap(store.read(s, after, limit), s) }))
  ).pipe(Layer.provide(layerMemory))

/** Polls (scheduler turn by turn) until `done()`; the store reads of a follower run in fibers of their own. */
const settle = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 10_000 && !done(); turn++) yield* Effect.yieldNow()
  })

describe("Bus", () => {
  test("a late subscriber catches up from the store, then goes live", async () => {
    const result = await run(Effect.gen(function*() {
      const bus = yield* Bus
      const store = yield* EventStore
      yield* writeUntil("s", 50)
      const caughtUp = yield* Deferred.make<void>()
      const subscriber = yield* Effect.fork(
        collectUntil(
          bus.subscribe("s", 10).pipe(Stream.tap((e) => (e.seq === 50 ? Deferred.succeed(caughtUp, undefined) : Effect.void))),
          70
        )
      )
      yield* Deferred.await(caughtUp)
      yield* writeUntil("s", 70)
      return { events: yield* Fiber.join(subscriber), stored: yield* store.read("s", 10), stats: yield* bus.stats }
    }))
    expect(seqs(result.events)).toEqual(range(11, 70))
    expect(result.events).toEqual(result.stored)
    // 51..70 arrived live: no store read was needed to fill a gap.
    expect(result.stats.heals).toBe(0)
    expect(result.stats.dropped).toBe(0)
  })

  for (const capacity of [1024, 2]) {
    test(`gapless across the catch-up/live boundary while the writer publishes (buffer ${capacity})`, async () => {
      const result = await run(
        Effect.gen(function*() {
          const bus = yield* Bus
          const subscribers: Array<{ readonly after: number; readonly fiber: Fiber.RuntimeFiber<ReadonlyArray<Envelope>, StoreError> }> = []
          const start = (after: number) =>
            Effect.map(Effect.fork(collectUntil(bus.subscribe("s", after), 400)), (fiber) => {
              subscribers.push({ after, fiber })
            })
          yield* start(0)
          yield* writeUntil("s", 400, (head) =>
            head >= 50 && subscribers.length === 1
              ? Effect.all([start(0), start(40), start(head)], { discard: true })
              : head >= 300 && subscribers.length === 4
              ? Effect.all([start(7), start(head - 1)], { discard: true })
              : Effect.void, 6)
          const out: Array<{ readonly after: number; readonly seqs: ReadonlyArray<number> }> = []
          for (const { after, fiber } of subscribers) out.push({ after, seqs: seqs(yield* Fiber.join(fiber)) })
          return { out, stats: yield* bus.stats }
        }),
        capacity
      )
      expect(result.out.length).toBe(6)
      for (const { after, seqs: got } of result.out) expect(got).toEqual(range(after + 1, 400))
      if (capacity === 2) expect(result.stats.heals).toBeGreaterThan(0)
    })
  }

  test("a subscriber that falls behind heals from the store, without blocking the writer or a fast subscriber", async () => {
    const result = await run(
      Effect.gen(function*() {
        const bus = yield* Bus
        yield* commit("s", 1)
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        const slow = yield* Effect.fork(
          collectUntil(
            bus.subscribe("s", 0).pipe(
              Stream.tap((e) => (e.seq === 1 ? Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)) : Effect.void))
            ),
            200
          )
        )
        yield* Deferred.await(started)
        const fast = yield* Effect.fork(collectUntil(bus.subscribe("s", 0), 200))
        // The slow subscriber is stuck at seq 1 while 199 more are committed and published.
        yield* writeUntil("s", 200)
        const fastEvents = yield* Fiber.join(fast)
        const statsWhileStuck = yield* bus.stats
        yield* Deferred.succeed(gate, undefined)
        const slowEvents = yield* Fiber.join(slow)
        return { fastEvents, slowEvents, statsWhileStuck, stats: yield* bus.stats }
      }),
      4
    )
    expect(seqs(result.fastEvents)).toEqual(range(1, 200))
    expect(result.statsWhileStuck.dropped).toBeGreaterThan(0)
    expect(seqs(result.slowEvents)).toEqual(range(1, 200))
    expect(result.slowEvents).toEqual(result.fastEvents)
    expect(result.stats.heals).toBeGreaterThan(0)
  })

  test("two subscribers see identical sequences, equal to the tape", async () => {
    const result = await run(Effect.gen(function*() {
      const bus = yield* Bus
      const store = yield* EventStore
      yield* commit("s", 1)
      const a = yield* Effect.fork(collectUntil(bus.subscribe("s", 0), 300))
      const b = yield* Effect.fork(collectUntil(bus.subscribe("s", 0), 300))
      yield* Effect.all([writeUntil("s", 300), writeUntil("other", 100)], { concurrency: "unbounded", discard: true })
      return { a: yield* Fiber.join(a), b: yield* Fiber.join(b), tape: yield* store.read("s", 0) }
    }), 8)
    expect(seqs(result.a)).toEqual(range(1, 300))
    expect(result.a).toEqual(result.b)
    expect(result.a).toEqual(result.tape)
  })

  test("subscribeCommitted: every selected batch from registration, local and remote, in order, never dropped", async () => {
    const result = await run(
      Effect.gen(function*() {
        const bus = yield* Bus
        yield* writeUntil("a", 5)
        // Selected: every batch of "b" and "c", and those of "a" holding a multiple of 10.
        const committed = yield* bus.subscribeCommitted((c) => c.session !== "a" || c.events.some((e) => e.seq % 10 === 0))
        yield* Effect.all([writeUntil("a", 150), writeUntil("b", 150)], { concurrency: "unbounded", discard: true })
        yield* bus.publishRemote([message("c", 1)])
        const batches = yield* committed.pipe(
          Stream.takeUntil((c) => c.session === "c"),
          Stream.runCollect,
          Effect.map(Chunk.toReadonlyArray)
        )
        return { batches, stats: yield* bus.stats }
      }),
      3
    )
    const of = (session: string) => seqs(result.batches.filter((c) => c.session === session).flatMap((c) => c.events))
    // Far more than the buffer of 3: nothing dropped, nothing before registration, nothing unselected.
    expect(of("b")).toEqual(range(1, 150))
    expect(of("a").filter((seq) => seq % 10 === 0)).toEqual(range(1, 15).map((n) => n * 10))
    expect(of("a").every((seq) => seq > 5)).toBe(true)
    expect(result.batches.filter((c) => c.session !== "c").every((c) => c.origin === "local")).toBe(true)
    expect(result.batches.at(-1)).toMatchObject({ session: "c", origin: "remote", work: [] })
  })

  test("events committed but never published here (another process) are read from the store when a live one shows the gap", async () => {
    const result = await run(Effect.gen(function*() {
      const bus = yield* Bus
      const store = yield* EventStore
      yield* commit("s", 2)
      const caughtUp = yield* Deferred.make<void>()
      const subscriber = yield* Effect.fork(
        collectUntil(
          bus.subscribe("s", 0).pipe(Stream.tap((e) => (e.seq === 2 ? Deferred.succeed(caughtUp, undefined) : Effect.void))),
          8
        )
      )
      yield* Deferred.await(caughtUp)
      // Appended by someone else: in the store, never on this Bus.
      yield* store.append("s", 2, [3, 4, 5].map((seq) => message("s", seq)), summaryOf("s", 5))
      yield* commit("s", 3)
      return { events: yield* Fiber.join(subscriber), stats: yield* bus.stats }
    }))
    expect(seqs(result.events)).toEqual(range(1, 8))
    expect(result.stats.heals).toBe(1)
  })

  test("a subscription ends with its stream: the subscriber is removed", async () => {
    const result = await run(Effect.gen(function*() {
      const bus = yield* Bus
      yield* writeUntil("s", 3)
      const events = yield* collectUntil(bus.subscribe("s", 0), 3)
      return { events, stats: yield* bus.stats }
    }))
    expect(seqs(result.events)).toEqual([1, 2, 3])
    expect(result.stats.subscribers).toBe(0)
  })

  describe("follow (plain calls from publish)", () => {
    test("a live event reaches the sink inside publish: no queue, no fiber between them", async () => {
      const result = await run(Effect.gen(function*() {
        const bus = yield* Bus
        yield* writeUntil("s", 5)
        const r = recorder()
        yield* bus.follow("s", 2, r.sink)
        yield* settle(() => r.got.length === 3)
        const beforeLive = [...r.got]
        // The same effect that publishes sees the sink called: nothing else ran in between.
        const seen = yield* Effect.map(commit("s", 2), () => [...r.got])
        return { beforeLive, seen, stats: yield* bus.stats }
      }))
      expect(result.beforeLive).toEqual([3, 4, 5])
      expect(result.seen).toEqual([3, 4, 5, 6, 7])
      expect(result.stats.heals).toBe(0)
    })

    test("gapless across the catch-up/live boundary, with a sink that pauses and resumes at random", async () => {
      const result = await run(Effect.gen(function*() {
        const bus = yield* Bus
        const followers: Array<{ readonly after: number; readonly r: ReturnType<typeof recorder>; readonly resume: () => void }> = []
        const add = (after: number) =>
          Effect.gen(function*() {
            const r = recorder()
            const following = yield* bus.follow("s", after, r.sink)
            followers.push({ after, r, resume: following.resume })
          })
        yield* add(0)
        // Seeded flips (LCG): every other follower's sink refuses now and then, and is resumed later.
        let seed = 7
        const flip = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % 5 === 0
        yield* writeUntil("s", 300, (head) =>
          Effect.gen(function*() {
            if (head >= 40 && followers.length === 1) yield* Effect.all([add(0), add(17), add(head)], { discard: true })
            for (const [i, f] of followers.entries()) {
              if (i % 2 === 1 && flip()) f.r.ctl.ready = !f.r.ctl.ready
              if (f.r.ctl.ready) f.resume()
            }
          }), 5)
        for (const f of followers) {
          f.r.ctl.ready = true
          f.resume()
        }
        yield* settle(() => followers.every((f) => f.r.got.at(-1) === 300))
        return { out: followers.map((f) => ({ after: f.after, got: f.r.got, failures: f.r.failures })), stats: yield* bus.stats }
      }), 1024)
      expect(result.out.length).toBe(4)
      for (const { after, got, failures } of result.out) {
        expect(got).toEqual(range(after + 1, 300))
        expect(failures).toEqual([])
      }
      // The paused followers missed events live and read them from the store.
      expect(result.stats.dropped).toBeGreaterThan(0)
      expect(result.stats.heals).toBeGreaterThan(0)
    })

    test("a sink that throws stops its own follower only: the publish succeeds, other followers go on", async () => {
      const result = await run(Effect.gen(function*() {
        const bus = yield* Bus
        const store = yield* EventStore
        yield* commit("s", 1)
        const broken = recorder()
        broken.ctl.throwAt = 3
        const fine = recorder()
        yield* bus.follow("s", 0, broken.sink)
        yield* bus.follow("s", 0, fine.sink)
        yield* settle(() => fine.got.length === 1)
        yield* writeUntil("s", 10)
        return { broken, fine, head: yield* store.head("s") }
      }))
      expect(result.head).toBe(10)
      expect(result.fine.got).toEqual(range(1, 10))
      expect(result.broken.got).toEqual([1, 2])
      expect(result.broken.failures).toEqual(["defect: Error: sink broke at 3"])
    })

    test("events published while the catch-up read is out are read again before going live (none falls between)", async () => {
      const gate = Effect.runSync(Deferred.make<void>())
      const ctl = { gated: false }
      // The page is taken from the store first, then held: commits land after the read saw the store.
      const store = readsThrough((read) => (ctl.gated ? Effect.flatMap(read, (page) => Effect.as(Deferred.await(gate), page)) : read))
      const result = await run(Effect.gen(function*() {
        const bus = yield* Bus
        yield* commit("s", 3)
        ctl.gated = true
        const r = recorder()
        yield* bus.follow("s", 0, r.sink)
        ctl.gated = false
        yield* commit("s", 2)
        const whileReading = [...r.got]
        yield* Deferred.succeed(gate, undefined)
        yield* settle(() => r.got.length >= 5)
        return { whileReading, got: r.got }
      }), 1024, store)
      expect(result.whileReading).toEqual([])
      // Nothing is published after seq 5: only the second read can have found 4 and 5.
      expect(result.got).toEqual([1, 2, 3, 4, 5])
    })

    test("a store read that fails ends the follower with the StoreError, once", async () => {
      const ctl = { failing: false }
      const store = readsThrough((read, s) => (ctl.failing ? Effect.fail(new StoreError({ message: "connection reset", session: s })) : read))
      const result = await run(Effect.gen(function*() {
        const bus = yield* Bus
        yield* commit("s", 3)
        ctl.failing = true
        const r = recorder()
        yield* bus.follow("s", 0, r.sink)
        yield* settle(() => r.failures.length > 0)
        ctl.failing = false
        yield* commit("s", 2)
        return r
      }), 1024, store)
      expect(result.failures).toEqual(["store: connection reset"])
      expect(result.got).toEqual([])
    })

    test("a follower is removed when its scope closes: publish no longer reaches it", async () => {
      const result = await run(Effect.gen(function*() {
        const bus = yield* Bus
        const r = recorder()
        yield* Effect.scoped(Effect.zipRight(bus.follow("s", 0, r.sink), Effect.zipRight(commit("s", 2), settle(() => r.got.length === 2))))
        const during = yield* bus.stats
        yield* commit("s", 2)
        return { got: r.got, stats: during, watched: bus.watchedSessions() }
      }))
      expect(result.got).toEqual([1, 2])
      expect(result.stats.subscribers).toBe(0)
      expect(result.watched).toEqual([])
    })
  })
})
