// SessionWriter on the memory store: rejections append nothing, concurrency keeps the tape gapless, one tick is one
// append, adopt closes what was open without calling the model, and a writer picks up tapes already in the store.
import { describe, expect, test } from "bun:test"
import { Clock, Context, Deferred, Effect, Either, Layer, Logger, Option, Queue, type Scope, Stream, TestClock, TestContext } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import { fold } from "../src/domain/state.ts"
import { Bus, layer as busLayer } from "../src/session/Bus.ts"
import { layer as writerLayer, SessionWriter, WriterContext } from "../src/session/SessionWriter.ts"
import { EventStore, type EventStoreShape, StoreError } from "../src/store/EventStore.ts"
import { makeMemory } from "../src/store/memory.ts"
import { testContext, writerTestLayer } from "./support/context.ts"
import { layerPg } from "../src/store/pg.ts"
import { databaseUrl, freshSchema } from "./support/pg.ts"
import { loadTape } from "./support/tapes.ts"

const alice = "user:alice"

const runWriter = <A, E>(program: Effect.Effect<A, E, SessionWriter | EventStore>) =>
  Effect.runPromise(Effect.scoped(program.pipe(Effect.provide(writerTestLayer))))

/** The writer over a memory store wrapped by `wrap` (to count, delay or gate its calls). */
const runWith = <A, E>(wrap: (store: EventStoreShape) => Effect.Effect<EventStoreShape>, program: Effect.Effect<A, E, SessionWriter | EventStore>) => {
  const store = Layer.effect(EventStore, Effect.flatMap(makeMemory, wrap))
  const layer = writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(store, Layer.succeed(WriterContext, testContext))))
  return Effect.runPromise(Effect.scoped(program.pipe(Effect.provide(layer))))
}

/** A store wrapper for `runWith`: while `down()` holds, every append fails with `error` (after `onRefused` sees its events). */
const refusingWhile = (down: () => boolean, error: (session: string) => Effect.Effect<never, StoreError>, onRefused: (events: ReadonlyArray<Envelope>) => void = () => {}) =>
  (store: EventStoreShape) =>
    Effect.succeed<EventStoreShape>({
      ...store,
      append: (s, h, e, sum) =>
        down()
          ? Effect.suspend(() => {
            onRefused(e)
            return error(s)
          })
          : store.append(s, h, e, sum)
    })

/** The writer over a memory store wrapped by `wrap`, which can see what a session subscriber of the Bus received. */
interface Follower {
  readonly seen: Array<Envelope>
  readonly follow: (session: string) => Effect.Effect<void, never, Bus | Scope.Scope>
  readonly waitFor: (n: number) => Effect.Effect<void>
}
const gatedWriterWith = <A, E>(
  wrap: (store: EventStoreShape, follower: Follower) => EventStoreShape,
  program: (follower: Follower) => Effect.Effect<A, E, SessionWriter | EventStore | Bus | Scope.Scope>
) => {
  const seen: Array<Envelope> = []
  const arrived = Effect.runSync(Queue.unbounded<void>())
  const follower: Follower = {
    seen,
    follow: (session) =>
      Effect.flatMap(Bus, (bus) =>
        bus.subscribe(session, 0).pipe(
          Stream.runForEach((e) => Effect.zipRight(Effect.sync(() => seen.push(e)), Queue.offer(arrived, undefined))),
          Effect.forkScoped,
          Effect.zipRight(Effect.suspend(() => (seen.length > 0 ? Effect.void : Effect.asVoid(Queue.take(arrived))))),
          Effect.asVoid
        )
      ),
    waitFor: (n) => Effect.suspend(() => (seen.length >= n ? Effect.void : Effect.asVoid(Queue.take(arrived)))).pipe(Effect.repeat({ until: () => seen.length >= n }))
  }
  const store = Layer.effect(EventStore, Effect.map(makeMemory, (m) => wrap(m, follower)))
  const layer = writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(store, Layer.succeed(WriterContext, testContext))))
  return Effect.runPromise(Effect.scoped(program(follower).pipe(Effect.provide(layer))))
}

const codeOf = <A>(r: Either.Either<A, { readonly _tag: string }>): string =>
  Either.isLeft(r) ? (r.left._tag === "Rejection" && "code" in r.left ? String(r.left.code) : r.left._tag) : "ok"

const gapless = (tape: ReadonlyArray<Envelope>) => tape.every((e, i) => e.seq === i + 1)


/** The session's tape, read every 20 ms until the writer has ended a turn as failed (10 s at most). */
const tapeOnceFailed = (store: EventStoreShape, session: string) =>
  store.read(session, 0).pipe(
    Effect.delay("20 millis"),
    Effect.repeat({ until: (t) => t.some((e) => e.type === "TurnFailed") }),
    Effect.timeout("10 seconds")
  )
describe("SessionWriter", () => {
  test("an unknown session is rejected (unknown_session) and nothing is stored", async () => {
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const r = yield* Effect.either(writer.submit("nope", { type: "send_message", text: "hi" }, alice))
        const inspected = yield* Effect.either(writer.inspect("nope", (s) => s.head))
        return { code: codeOf(r), inspected: codeOf(inspected), head: yield* store.head("nope"), ids: yield* store.sessionIds() }
      })
    )
    expect(out).toEqual({ code: "unknown_session", inspected: "unknown_session", head: 0, ids: [] })
  })

  // BUG (src/session/SessionWriter.ts, entryOf): when the store's read is asynchronous (SQLite, PostgreSQL), a second
  // submit that finds the first one loading an unknown id awaits its Deferred, gets Some(entry) for a head-0 entry
  // whose drain fiber was just interrupted, enqueues into it and waits forever. Flip to `test` once fixed.
  test("two concurrent submits to an unknown session are both rejected (neither hangs)", async () => {
    // A store whose reads are asynchronous, like SQLite or PostgreSQL: the second submit finds the first one loading.
    const asyncReads = (store: EventStoreShape) =>
      Effect.succeed<EventStoreShape>({ ...store, read: (s, after, limit) => Effect.zipRight(Effect.yieldNow(), store.read(s, after, limit)) })
    const out = await runWith(
      asyncReads,
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const submit = Effect.either(writer.submit("ghost", { type: "send_message", text: "hi" }, alice))
        return yield* Effect.all([submit, submit], { concurrency: "unbounded" }).pipe(Effect.timeout("500 millis"), Effect.option)
      })
    )
    expect(Option.map(out, (rs) => rs.map(codeOf))).toEqual(Option.some(["unknown_session", "unknown_session"]))
  })

  test("a command that does not fit the state is a typed Rejection; nothing is appended; the writer goes on", async () => {
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create({ title: "t" })
        const before = yield* store.head(session)
        const bad = [
          yield* Effect.either(writer.submit(session, { type: "interrupt" }, alice)),
          yield* Effect.either(writer.submit(session, { type: "approve", callId: "call-9" }, alice)),
          yield* Effect.either(writer.submit(session, { type: "model_delta", turnId: "turn-1", text: "x" }, "model"))
        ]
        const after = yield* store.head(session)
        const good = yield* writer.submit(session, { type: "send_message", text: "hello" }, alice)
        return {
          codes: bad.map(codeOf),
          tags: bad.map((r) => (Either.isLeft(r) ? r.left._tag : "none")),
          before,
          after,
          good: good.events.map((e) => e.type),
          head: good.head,
          dropped: writer.droppedReports()
        }
      })
    )
    expect(out).toEqual({
      codes: ["nothing_to_interrupt", "unknown_call", "stale"],
      tags: ["Rejection", "Rejection", "Rejection"],
      before: 1,
      after: 1,
      good: ["UserMessageAdded", "TurnStarted"],
      head: 3,
      dropped: 1
    })
  })

  test("100 concurrent submits to one session give a gapless tape, every message exactly once", async () => {
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        const acks = yield* Effect.all(
          Array.from({ length: 100 }, (_, i) => writer.submit(session, { type: "send_message", text: `m${i}` }, `user:c${i % 7}`)),
          { concurrency: "unbounded" }
        )
        const tape = yield* store.read(session, 0)
        const live = yield* writer.inspect(session, (s) => summaryView(s))
        return { acks, tape, live, summary: yield* store.summary(session) }
      })
    )
    expect(gapless(out.tape)).toBe(true)
    expect(out.tape.length).toBe(1 + 100 + 1)
    const texts = out.tape.flatMap((e) => (e.type === "UserMessageAdded" || e.type === "UserMessageQueued" ? [e.text] : []))
    expect(texts.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`).sort())
    expect(out.tape.filter((e) => e.type === "TurnStarted").length).toBe(1)
    expect(out.tape.filter((e) => e.type === "UserMessageQueued").length).toBe(99)
    // Each ack names exactly its own events.
    expect(out.acks.flatMap((a) => a.events.map((e) => e.seq)).sort((a, b) => a - b)).toEqual(out.tape.slice(1).map((e) => e.seq))
    expect(Option.getOrNull(out.summary)).toEqual(out.live)
    expect(summaryView(fold(out.tape[0]!.session, out.tape))).toEqual(out.live)
  })

  test("inputs that arrive in one tick are decided in order and stored with one append", async () => {
    let appends = 0
    const counting = (store: EventStoreShape) =>
      Effect.succeed<EventStoreShape>({ ...store, append: (s, h, events, summary) => Effect.zipRight(Effect.sync(() => appends++), store.append(s, h, events, summary)) })
    const out = await runWith(
      counting,
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        const first = yield* writer.submit(session, { type: "send_message", text: "go" }, alice)
        const turnId = first.events[1]?.type === "TurnStarted" ? first.events[1].turnId : "?"
        const before = appends
        const acks = yield* Effect.all(
          [
            writer.submit(session, { type: "model_delta", turnId, text: "a" }, "model"),
            writer.submit(session, { type: "model_delta", turnId, text: "b" }, "model"),
            Effect.either(writer.submit(session, { type: "interrupt", reason: "x" }, alice)),
            Effect.either(writer.submit(session, { type: "model_delta", turnId, text: "late" }, "model"))
          ],
          { concurrency: "unbounded" }
        )
        return { batchAppends: appends - before, acks, tape: yield* store.read(session, 0) }
      })
    )
    expect(out.batchAppends).toBe(1)
    expect(out.tape.slice(3).map((e) => (e.type === "AssistantDelta" ? `delta ${e.text}` : e.type))).toEqual([
      "delta a",
      "delta b",
      "InterruptRequested",
      "TurnInterrupted"
    ])
    // One `at` for the batch; the delta after the interrupt was decided against the state the interrupt left: dropped.
    expect(new Set(out.tape.slice(3).map((e) => e.at)).size).toBe(1)
    expect(codeOf(out.acks[3])).toBe("stale")
  })

  test("a writer picks up a tape already in the store and continues it", async () => {
    const fixture = loadTape("approval-pending")
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        yield* store.append("approval-pending", 0, fixture, summaryView(fold("approval-pending", fixture)))
        const ack = yield* writer.submit("approval-pending", { type: "approve", callId: "call-5" }, alice)
        const again = yield* Effect.either(writer.submit("approval-pending", { type: "approve", callId: "call-5" }, alice))
        return { head: ack.head, types: ack.events.map((e) => e.type), again: codeOf(again) }
      })
    )
    expect(out).toEqual({ head: 7, types: ["ToolCallApproved"], again: "not_pending" })
  })

  describe("adopt", () => {
    test("a fork whose prefix has an open turn and a running call: closed with reason fork; the model is not called", async () => {
      const source = loadTape("restart-recovery").slice(0, 8)
      const out = await runWriter(
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const store = yield* EventStore
          const session = yield* writer.adopt(source, { reason: "fork", forkedFrom: { session: "restart-recovery", seq: 8 } })
          const tape = yield* store.read(session, 0)
          const live = yield* writer.inspect(session, (s) => ({ phase: summaryView(s).phase, pending: [...s.commands.pending], streaming: s.interrupts.streaming }))
          return { session, tape, live, summary: yield* store.summary(session) }
        })
      )
      expect(out.session).not.toBe("restart-recovery")
      expect(gapless(out.tape)).toBe(true)
      expect(out.tape.every((e) => e.session === out.session)).toBe(true)
      expect(out.tape[0]).toMatchObject({ type: "SessionCreated", forkedFrom: { session: "restart-recovery", seq: 8 } })
      expect(out.tape.slice(1, 8).map((e) => e.type)).toEqual(source.slice(1).map((e) => e.type))
      expect(out.tape.slice(8).map((e) => ({ ...e, at: 0 }))).toEqual([
        { session: out.session, seq: 9, at: 0, by: "system", type: "TurnInterrupted", turnId: "turn-3", reason: "fork" },
        { session: out.session, seq: 10, at: 0, by: "system", type: "ToolExecutionCancelled", callId: "call-5", reason: "fork", outcome: "unknown" }
      ])
      // No new TurnStarted: the only one is the copied one.
      expect(out.tape.filter((e) => e.type === "TurnStarted").length).toBe(1)
      expect(out.live).toEqual({ phase: "awaiting_approval", pending: ["call-7"], streaming: null })
      expect(Option.getOrNull(out.summary)?.forkedFrom).toEqual({ session: "restart-recovery", seq: 8 })
    })

    test("queued messages in the prefix stay queued (no turn is started) until the next message", async () => {
      const source = loadTape("queued-after-stream").slice(0, 6)
      const out = await runWriter(
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const store = yield* EventStore
          const session = yield* writer.adopt(source, { reason: "fork" })
          const adopted = yield* store.read(session, 0)
          const next = yield* writer.submit(session, { type: "send_message", text: "go on" }, alice)
          return { adopted, next: next.events.map((e) => e.type) }
        })
      )
      expect(out.adopted.slice(6).map((e) => e.type)).toEqual(["TurnInterrupted"])
      expect(out.adopted.filter((e) => e.type === "TurnStarted").length).toBe(1)
      expect(out.next).toEqual(["QueuedMessagesFlushed", "UserMessageAdded", "TurnStarted"])
    })

    test("a tape with nothing open is copied as is (marked imported, titled so); a malformed one is rejected", async () => {
      const source = loadTape("plain-chat")
      const out = await runWriter(
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const store = yield* EventStore
          const session = yield* writer.adopt(source, { reason: "import" })
          const copied = yield* store.read(session, 0)
          const gap = yield* Effect.either(writer.adopt([source[0]!, source[2]!], { reason: "import" }))
          const headless = yield* Effect.either(writer.adopt(source.slice(1), { reason: "import" }))
          return { copied, gap: codeOf(gap), headless: codeOf(headless) }
        })
      )
      expect(out.copied.slice(1).map((e) => ({ ...e, session: "x" }))).toEqual(source.slice(1).map((e) => ({ ...e, session: "x" })))
      expect(out.copied[0]).toMatchObject({ type: "SessionCreated", title: "Hello, who are you? (imported)", importedFrom: { session: "plain-chat", seq: 10 } })
      expect(out).toMatchObject({ gap: "bad_tape", headless: "bad_tape" })
    })
  })

  /** A store whose appends, once `hold()` is called, wait at the door until `release`; `entered` fires when one does. */
  const gatedWriter = <A, E>(
    body: (gate: { readonly hold: () => void; readonly entered: Deferred.Deferred<void>; readonly release: Deferred.Deferred<void> }) => Effect.Effect<A, E, SessionWriter | EventStore>
  ) =>
    Effect.runPromise(
      Effect.gen(function* () {
        const entered = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        let holding = false
        const gated = (store: EventStoreShape) =>
          Effect.succeed<EventStoreShape>({
            ...store,
            append: (s, h, events, summary) =>
              holding
                ? Effect.zipRight(Effect.zipRight(Deferred.succeed(entered, undefined), Deferred.await(release)), store.append(s, h, events, summary))
                : store.append(s, h, events, summary)
          })
        const store = Layer.effect(EventStore, Effect.flatMap(makeMemory, gated))
        const layer = writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(store, Layer.succeed(WriterContext, testContext))))
        return yield* body({ hold: () => (holding = true), entered, release }).pipe(Effect.provide(layer), Effect.scoped)
      })
    )

  // BUG (src/session/SessionWriter.ts, inspect): documented as running "inside the session's queue", it reads
  // entry.state directly, which runBatch evolves *before* store.append; so it sees events that are not stored (and
  // that a failed append would roll back). Flip to `test` once fixed.
  test("inspect runs inside the session's queue: it never sees events that are not stored yet", async () => {
    const out = await gatedWriter(({ hold, entered, release }) =>
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const events = yield* EventStore
        const session = yield* writer.create()
        hold()
        const fiber = yield* Effect.fork(writer.submit(session, { type: "send_message", text: "hi" }, alice))
        yield* Deferred.await(entered)
        const seen = yield* writer.inspect(session, (s) => s.head).pipe(Effect.timeout("200 millis"), Effect.option)
        const stored = yield* events.head(session)
        yield* Deferred.succeed(release, undefined)
        yield* fiber.await
        return { seen: Option.getOrNull(seen), stored }
      })
    )
    // Either inspect waited for the batch (timed out here) or it saw only what is stored.
    expect(out.seen === null || out.seen === out.stored).toBe(true)
  })

  // A batch already taken by the drain fiber is not in the queue: eviction must not interrupt it mid-append.
  test("evictIdle does not interrupt a batch in flight: its submit completes and its events are stored", async () => {
    const out = await gatedWriter(({ hold, entered, release }) =>
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const events = yield* EventStore
        const session = yield* writer.create()
        hold()
        const fiber = yield* Effect.fork(Effect.either(writer.submit(session, { type: "send_message", text: "hi" }, alice)))
        yield* Deferred.await(entered)
        yield* writer.evictIdle(0)
        yield* Deferred.succeed(release, undefined)
        const done = yield* fiber.await.pipe(Effect.timeout("500 millis"), Effect.option)
        return { completed: Option.isSome(done), head: yield* events.head(session) }
      })
    )
    expect(out).toEqual({ completed: true, head: 3 })
  })

  test("evictIdle keeps sessions with work in flight and drops idle ones, which reload intact", async () => {
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const idle = yield* writer.create()
        const busy = yield* writer.create()
        // No runner here: the turn stays streaming, so the session is busy.
        yield* writer.submit(busy, { type: "send_message", text: "hi" }, alice)
        const before = yield* writer.inspect(idle, (s) => s.head)
        const evicted = yield* writer.evictIdle(0)
        const phase = yield* writer.inspect(busy, (s) => s.interrupts.streaming !== null)
        const ack = yield* writer.submit(idle, { type: "send_message", text: "back" }, alice)
        return { evicted, before, phase, head: ack.head }
      })
    )
    expect(out).toEqual({ evicted: 1, before: 1, phase: true, head: 3 })
  })

  describe("copied tapes (issue 10, finding 3)", () => {
    /** approval-pending with call-5 approved by someone: an approval given on another server (or forged). */
    const approvedElsewhere = (): ReadonlyArray<Envelope> => {
      const tape = loadTape("approval-pending")
      const last = tape[tape.length - 1]!
      return [...tape, { session: last.session, seq: last.seq + 1, at: last.at + 1, by: "user:someone-else", type: "ToolCallApproved", callId: "call-5" }]
    }

    test("an approval made before the import never runs here: the call comes back pending, in the same one append", async () => {
      let appends = 0
      const counted = (store: EventStoreShape) =>
        Effect.succeed<EventStoreShape>({ ...store, append: (s, h, e, sum) => Effect.zipRight(Effect.sync(() => appends++), store.append(s, h, e, sum)) })
      const out = await runWith(
        counted,
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const store = yield* EventStore
          const session = yield* writer.adopt(approvedElsewhere(), { reason: "import" })
          const tape = yield* store.read(session, 0)
          const summary = Option.getOrNull(yield* store.summary(session))
          return { tape, appends, phase: summary?.phase, pending: summary?.pendingApprovals }
        })
      )
      // One append holds the copy and its closing events: a restart can never find the copied approval open.
      expect(out.appends).toBe(1)
      expect(out.tape.at(-1)).toMatchObject({ type: "ToolCallReopened", callId: "call-5", by: "system" })
      expect(out).toMatchObject({ phase: "awaiting_approval", pending: 1 })
      expect(fold("x", out.tape).commands.calls.get("call-5")?.status).toBe("pending")
    })

    test("a copy of a renamed session keeps its own marked title (the copied rename does not override it)", async () => {
      const tape = loadTape("plain-chat")
      const last = tape[tape.length - 1]!
      const renamed: ReadonlyArray<Envelope> = [...tape, { session: last.session, seq: last.seq + 1, at: last.at, by: "user:alice", type: "SessionRenamed", title: "My chat" }]
      const out = await runWriter(
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const store = yield* EventStore
          const imported = yield* writer.adopt(renamed, { reason: "import" })
          const forked = yield* writer.adopt(renamed, { reason: "fork", forkedFrom: { session: "plain-chat", seq: renamed.length } })
          const titleOf = (id: string) => Effect.map(store.summary(id), (s) => Option.getOrNull(s)?.title)
          return { imported: yield* titleOf(imported), forked: yield* titleOf(forked) }
        })
      )
      expect(out).toEqual({ imported: "My chat (imported)", forked: `My chat (fork @${renamed.length})` })
    })

    test("a forged tape is refused with the event and the reason, and nothing is stored", async () => {
      const forged = approvedElsewhere().map((e) => (e.type === "ToolCallApproved" ? { ...e, by: "policy:admin" } : e))
      const out = await runWriter(
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const store = yield* EventStore
          const r = yield* Effect.either(writer.adopt(forged, { reason: "import" }))
          return { r: Either.isLeft(r) && r.left._tag === "Rejection" ? `${r.left.code}: ${r.left.message}` : "accepted", ids: yield* store.sessionIds() }
        })
      )
      expect(out.r).toContain("bad_tape: event 7 (seq 7, ToolCallApproved)")
      expect(out.r).toContain("policy:admin")
      expect(out.ids).toEqual([])
    })
  })

  test("anything thrown while deciding becomes a nack (internal) for that input alone, logged once; the writer goes on", async () => {
    const logs: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      logs.push(`${logLevel.label}: ${String(message)}`)
    })
    const throwing = { ...testContext, checkTool: (tool: string, args: unknown) => (tool === "boom" ? (() => { throw new RangeError("Maximum call stack size exceeded") })() : testContext.checkTool(tool, args)) }
    const layer = writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(Layer.effect(EventStore, makeMemory), Layer.succeed(WriterContext, throwing))))
    const out = await Effect.runPromise(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const session = yield* writer.create()
        yield* writer.submit(session, { type: "send_message", text: "hi" }, alice)
        // Offered in one tick, so they are decided in one batch: only the poisoned one is refused.
        const bad = yield* writer.offer(session, { type: "model_tool_call", turnId: "turn-3", tool: "boom", args: {} }, "model")
        const good = yield* writer.offer(session, { type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "1" } }, "model")
        const poisoned = yield* Effect.either(Deferred.await(bad))
        const next = yield* Deferred.await(good)
        const after = yield* writer.submit(session, { type: "model_completed", turnId: "turn-3" }, "model")
        return {
          poisoned: Either.isLeft(poisoned) && poisoned.left._tag === "Rejection" ? poisoned.left : null,
          next: [...next.events, ...after.events].map((e) => e.type)
        }
      }).pipe(Effect.provide(layer), Effect.scoped, Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    )
    expect(out.poisoned?.code).toBe("internal")
    expect(out.poisoned?.message).toContain("RangeError")
    expect(out.next).toEqual(["ToolCallRequested", "TurnCompleted"])
    const errors = logs.filter((l) => l.startsWith("ERROR"))
    expect(errors).toHaveLength(1)
    expect(errors[0]!.length).toBeLessThan(600)
  })

  test("a failed store write is logged as an error, its command gets store_error, and the turn it lost reports of ends failed", async () => {
    const logs: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      logs.push(`${logLevel.label}: ${String(message)}`)
    })
    let failing = false
    const out = await runWith(
      refusingWhile(() => failing, (session) => Effect.fail(new StoreError({ message: "disk full", session }))),
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        yield* writer.submit(session, { type: "send_message", text: "hi" }, alice)
        failing = true
        // A delta nobody waits on, and a command that waits: both refused by the store.
        yield* writer.report(session, { type: "model_delta", turnId: "turn-3", text: "lost" }, "model")
        const command = yield* Effect.either(writer.submit(session, { type: "send_message", text: "queued?" }, alice))
        const headWhileDown = yield* store.head(session)
        failing = false
        // The writer ends the turn by itself once the store accepts writes again.
        const tape = yield* tapeOnceFailed(store, session)
        return { command: Either.isLeft(command) ? command.left._tag : "ok", headWhileDown, tape }
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    )
    expect(out.command).toBe("StoreError")
    expect(out.headWhileDown).toBe(3)
    expect(out.tape.at(-1)).toMatchObject({ type: "TurnFailed", turnId: "turn-3", by: "system", retryable: true })
    expect(out.tape.some((e) => e.type === "AssistantDelta")).toBe(false)
    expect(logs.some((l) => l.startsWith("ERROR") && l.includes("append to"))).toBe(true)
  })

  // Found by the chaos test: a COMMIT cut off by the network was a defect of @effect/sql, and a defect lost a turn's
  // reports without ending it. Whatever fails a batch, the turns it lost reports of end.
  test("a write that dies (a defect, not a StoreError) still ends the turn it lost reports of", async () => {
    let dying = false
    const out = await runWith(
      refusingWhile(() => dying, () => Effect.die(new Error("COMMIT on a dropped connection"))),
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        yield* writer.submit(session, { type: "send_message", text: "hi" }, alice)
        dying = true
        const completed = yield* Effect.either(writer.submit(session, { type: "model_completed", turnId: "turn-3" }, "model"))
        dying = false
        const tape = yield* tapeOnceFailed(store, session)
        return { completed: codeOf(completed), tape }
      })
    )
    expect(out.completed).toBe("internal")
    expect(out.tape.at(-1)).toMatchObject({ type: "TurnFailed", turnId: "turn-3", by: "system", retryable: true })
    expect(gapless(out.tape)).toBe(true)
  })

  // Found in the chaos test's logs (hundreds of failed appends a second from one writer during an outage): every failed
  // batch started a repair, and every failed attempt of a repair (its TurnFailed refused by the same store) started
  // another at once, so a writer spun and multiplied repairs for as long as the store was down.
  test("a long outage under a streaming turn: one repair per turn, however many writes fail (no repair of repairs)", async () => {
    let failing = false
    let closingAttempts = 0
    const out = await runWith(
      refusingWhile(
        () => failing,
        (session) => Effect.fail(new StoreError({ message: "connection refused", session })),
        (events) => {
          if (events.some((e) => e.type === "TurnFailed")) closingAttempts++
        }
      ),
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        yield* writer.submit(session, { type: "send_message", text: "hi" }, alice)
        failing = true
        // Twenty delta batches fail, then twenty seconds of outage pass (on the test clock).
        for (let i = 0; i < 20; i++) yield* Effect.either(writer.submit(session, { type: "model_delta", turnId: "turn-3", text: `d${i}` }, "model"))
        for (let s = 0; s < 20; s++) yield* TestClock.adjust("1 second")
        const during = closingAttempts
        failing = false
        yield* TestClock.adjust("10 seconds")
        // The repair's next attempt is due by now; let its fiber run (bounded, no clock).
        const tape = yield* store.read(session, 0).pipe(Effect.repeat({ until: (t) => t.some((e) => e.type === "TurnFailed"), times: 10_000 }))
        return { during, failed: tape.filter((e) => e.type === "TurnFailed").length, dropped: writer.droppedReports() }
      }).pipe(Effect.provide(TestContext.TestContext), Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)))
    )
    // One repair's backoff (100 ms doubling, at most 5 s apart) tries about 8 times in 20 s; doubling repairs, thousands.
    expect(out.during).toBeLessThan(20)
    expect(out.failed).toBe(1)
    expect(out.dropped).toBe(0)
    // Without the guard, a repair's failed attempt starts another at once: the writer spins and this never ends.
  }, 15_000)

  test("ack.seq is the head right after the command's events, and they are stored when the ack arrives", async () => {
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        const ack = yield* writer.submit(session, { type: "send_message", text: "hi" }, alice)
        return { ack: ack.head, last: ack.events.at(-1)?.seq, stored: yield* store.head(session) }
      })
    )
    expect(out).toEqual({ ack: 3, last: 3, stored: 3 })
  })

  test("one encoding: the envelopes the writer publishes are byte for byte those any server reads back", async () => {
    const out = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create({ title: "t" })
        const acks = [
          yield* writer.submit(session, { type: "send_message", text: "hi" }, alice),
          yield* writer.submit(session, { type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "1" }, description: "d" }, "model"),
          yield* writer.submit(session, { type: "model_completed", turnId: "turn-3", usage: { inputTokens: 1, outputTokens: 2 } }, "model"),
          yield* writer.submit(session, { type: "approve", callId: "call-4", args: { code: "2" } }, alice)
        ]
        return { sent: acks.flatMap((a) => a.events).map((e) => JSON.stringify(e)), stored: (yield* store.read(session, 1)).map((e) => JSON.stringify(e)) }
      })
    )
    expect(out.sent).toEqual(out.stored)
    expect(out.sent[0]!.startsWith('{"session":')).toBe(true)
  })

  test("at never goes back, even when the clock does", async () => {
    let now = 2_000_000
    const clock: Clock.Clock = {
      [Clock.ClockTypeId]: Clock.ClockTypeId,
      unsafeCurrentTimeMillis: () => now,
      currentTimeMillis: Effect.sync(() => now),
      unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
      currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
      sleep: (d) => Effect.sleep(d)
    }
    const tape = await runWriter(
      Effect.gen(function* () {
        const writer = yield* SessionWriter
        const store = yield* EventStore
        const session = yield* writer.create()
        now = 1_000_000
        yield* writer.submit(session, { type: "send_message", text: "back in time" }, alice)
        now = 3_000_000
        yield* writer.submit(session, { type: "interrupt" }, alice)
        return yield* store.read(session, 0)
      }).pipe(Effect.withClock(clock))
    )
    expect(tape.map((e) => e.at)).toEqual([2_000_000, 2_000_000, 2_000_000, 3_000_000, 3_000_000])
  })

  test("events are published only after their append succeeded", async () => {
    let failing = false
    let seenDuringAppend = -1
    const out = await gatedWriterWith(
      (store, bus) => ({
        ...store,
        append: (s, h, e, sum) =>
          Effect.gen(function* () {
            // While the append runs, no subscriber has the batch.
            seenDuringAppend = bus.seen.length
            if (failing) return yield* new StoreError({ message: "refused", session: s })
            return yield* store.append(s, h, e, sum)
          })
      }),
      (bus) =>
        Effect.gen(function* () {
          const writer = yield* SessionWriter
          const session = yield* writer.create()
          yield* bus.follow(session)
          failing = true
          yield* Effect.either(writer.submit(session, { type: "send_message", text: "never stored" }, alice))
          const afterFailure = bus.seen.length
          failing = false
          yield* writer.submit(session, { type: "send_message", text: "stored" }, alice)
          yield* bus.waitFor(3)
          return { afterFailure, seenDuringAppend, seen: bus.seen.map((e) => e.seq) }
        })
    )
    expect(out.afterFailure).toBe(1)
    expect(out.seenDuringAppend).toBe(1)
    expect(out.seen).toEqual([1, 2, 3])
  })
})

/** Two stores of one database: one memory store shared, or two PostgreSQL pools on one fresh schema (two processes). */
const sharedStores: ReadonlyArray<{ readonly name: string; readonly pair: Effect.Effect<readonly [Layer.Layer<EventStore, unknown>, Layer.Layer<EventStore, unknown>], never, Scope.Scope> }> = [
  { name: "memory", pair: Effect.map(makeMemory, (m) => [Layer.succeed(EventStore, m), Layer.succeed(EventStore, m)] as const) },
  ...(databaseUrl === undefined
    ? []
    : [{
        name: "postgres",
        pair: Effect.map(
          Effect.acquireRelease(Effect.promise(() => freshSchema(databaseUrl!)), (schema) => Effect.promise(() => schema.drop())),
          (schema) => [layerPg({ url: schema.url, maxConnections: 2 }), layerPg({ url: schema.url, maxConnections: 2 })] as const
        )
      }])
]
if (databaseUrl === undefined) console.log("two writers on PostgreSQL SKIPPED: DATABASE_URL is not set (set it to a PostgreSQL database to run them)")

for (const { name, pair } of sharedStores) describe(`two writers of one session (two processes on one ${name} store)`, () => {
  const twoWriters = <A, E>(program: (a: SessionWriter["Type"], b: SessionWriter["Type"], store: EventStoreShape) => Effect.Effect<A, E>) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const [one, two] = yield* pair
          const writerOver = (store: Layer.Layer<EventStore, unknown>) =>
            Layer.build(writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(store, Layer.succeed(WriterContext, testContext)))))
          const first = yield* writerOver(one)
          const a = Context.get(first, SessionWriter)
          const b = Context.get(yield* writerOver(two), SessionWriter)
          return yield* program(a, b, Context.get(first, EventStore))
        })
      ).pipe(Effect.orDie)
    )

  test("a writer that lost the race reloads the tape before deciding again: a stale interrupt is refused", async () => {
    const out = await twoWriters((a, b, store) =>
      Effect.gen(function* () {
        const session = yield* a.create()
        yield* a.submit(session, { type: "send_message", text: "hi" }, alice)
        // B loads the session while the turn streams …
        const streamingInB = yield* b.inspect(session, (s) => s.interrupts.streaming)
        // … then A ends the turn; B's state in memory still says streaming.
        yield* a.submit(session, { type: "model_completed", turnId: "turn-3" }, "model")
        const stale = yield* Effect.either(b.submit(session, { type: "interrupt" }, alice))
        const sent = yield* b.submit(session, { type: "send_message", text: "again" }, alice)
        return { streamingInB, stale: codeOf(stale), sent: sent.events.map((e) => e.type), tape: yield* store.read(session, 0) }
      })
    )
    expect(out.streamingInB).toBe("turn-3")
    expect(out.stale).toBe("nothing_to_interrupt")
    expect(out.sent).toEqual(["UserMessageAdded", "TurnStarted"])
    expect(gapless(out.tape)).toBe(true)
  })

  // Found by the chaos test: a worker's writer, behind the store, refused the ToolExecutionStarted of a call it had not
  // seen approved ("it is unknown"), and the call stayed approved forever with nothing to run it. A refusal cannot
  // conflict the way an append does, so it must be decided on the store's head too.
  test("a refusal is decided on the store's head: a writer behind it approves and starts a call it had not seen", async () => {
    const out = await twoWriters((a, b, store) =>
      Effect.gen(function* () {
        const session = yield* a.create()
        // B loads the session while it is idle …
        yield* b.inspect(session, (s) => s.head)
        // … then A's model asks for a call (call-4, awaiting approval); B's state in memory knows nothing of it.
        yield* a.submit(session, { type: "send_message", text: "what is 6*7?" }, alice)
        yield* a.submit(session, { type: "model_tool_call", turnId: "turn-3", tool: "eval", args: { code: "6*7" } }, "model")
        yield* a.submit(session, { type: "model_completed", turnId: "turn-3" }, "model")
        const approved = yield* Effect.either(b.submit(session, { type: "approve", callId: "call-4" }, alice))
        // Now A is behind: it still sees the call pending when a runner reports its start.
        const started = yield* Effect.either(a.submit(session, { type: "tool_started", callId: "call-4" }, "tool"))
        return {
          approved: Either.isRight(approved) ? approved.right.events.map((e) => e.type) : codeOf(approved),
          started: Either.isRight(started) ? started.right.events.map((e) => e.type) : codeOf(started),
          tape: yield* store.read(session, 0)
        }
      })
    )
    expect(out.approved).toEqual(["ToolCallApproved"])
    expect(out.started).toEqual(["ToolExecutionStarted"])
    expect(gapless(out.tape)).toBe(true)
  })

  test("concurrent commands from both writers: every message once, gapless", async () => {
    const out = await twoWriters((a, b, store) =>
      Effect.gen(function* () {
        const session = yield* a.create()
        yield* b.inspect(session, (s) => s.head)
        const sends = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).submit(session, { type: "send_message", text: `m${i}` }, alice))
        yield* Effect.all(sends, { concurrency: "unbounded" })
        return yield* store.read(session, 0)
      })
    )
    expect(gapless(out)).toBe(true)
    const texts = out.flatMap((e) => (e.type === "UserMessageAdded" || e.type === "UserMessageQueued" ? [e.text] : []))
    expect(texts.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`).sort())
  })
})
