// One EventStore contract, run over every layer: memory, SQLite (temp file), PostgreSQL (fresh schema, when DATABASE_URL is set).
import { afterEach, beforeEach, describe, expect, test } from "bun:test"
import { Database } from "bun:sqlite"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Layer, Option } from "effect"
import { canonicalEnvelope, decodeEnvelope, type Envelope, type Event, eventTypes } from "../src/domain/Event.ts"
import type { SessionSummary } from "../src/domain/projections/summaryTypes.ts"
import { summaryOf as baseSummary } from "./support/rows.ts"
import { fromRow } from "../src/store/codec.ts"
import { AppendConflict, EventStore, StoreError } from "../src/store/EventStore.ts"
import { layerMemory } from "../src/store/memory.ts"
import { layerPg } from "../src/store/pg.ts"
import { layerSqlite } from "../src/store/sqlite.ts"
import { databaseUrl, freshSchema, runSql } from "./support/pg.ts"

// ---- local builders ----

const envelope = (session: string, seq: number, event: Event, by = "system"): Envelope => ({
  session,
  seq,
  at: 1_700_000_000_000 + seq,
  by,
  ...event
})

const summaryOf = (session: string, head: number, updatedAt: number, title = `title of ${session}`) => baseSummary(session, head, updatedAt, title)

const messages = (session: string, from: number, count: number, tag = "m"): Array<Envelope> =>
  Array.from({ length: count }, (_, i) =>
    envelope(session, from + i, { type: "UserMessageAdded", messageId: `${tag}${from + i}`, text: `${tag} ${from + i}` }, "user:c1"))

/** One of every event type, with optional fields present and absent. */
const everyType = (session: string): Array<Envelope> => {
  const events: Array<{ readonly event: Event; readonly by: string }> = [
    { event: { type: "SessionCreated", title: "hello", forkedFrom: { session: "other", seq: 4 } }, by: "system" },
    { event: { type: "SessionCreated" }, by: "system" },
    { event: { type: "UserMessageAdded", messageId: "m1", text: "hi \u00e9\u{1F600} \"quoted\"\n" }, by: "user:c1" },
    { event: { type: "UserMessageQueued", messageId: "m2", text: "later" }, by: "user:c2" },
    { event: { type: "QueuedMessagesFlushed", messageIds: ["m2", "m3"] }, by: "system" },
    { event: { type: "QueuedMessageCancelled", messageId: "m3" }, by: "user:c2" },
    { event: { type: "TurnStarted", turnId: "t1", model: "scripted" }, by: "system" },
    { event: { type: "AssistantDelta", turnId: "t1", text: "Hel" }, by: "model" },
    {
      event: {
        type: "ToolCallRequested",
        turnId: "t1",
        callId: "c1",
        tool: "eval",
        args: { code: "1+1", nested: { a: [1, 2, null], b: true } },
        description: "adds"
      },
      by: "model"
    },
    { event: { type: "ToolCallRequested", turnId: "t1", callId: "c2", tool: "read_file", args: {} }, by: "model" },
    { event: { type: "ToolCallInvalid", turnId: "t1", callId: "c3", tool: "nope", error: "unknown tool" }, by: "model" },
    { event: { type: "TurnCompleted", turnId: "t1", usage: { inputTokens: 10, outputTokens: 5 } }, by: "model" },
    { event: { type: "TurnCompleted", turnId: "t0" }, by: "model" },
    { event: { type: "TurnInterrupted", turnId: "t2", reason: "user" }, by: "user:c1" },
    { event: { type: "TurnFailed", turnId: "t3", error: "boom", retryable: false }, by: "system" },
    { event: { type: "ToolCallApproved", callId: "c1" }, by: "user:c1" },
    { event: { type: "ToolCallApproved", callId: "c2", args: { path: "a.txt" } }, by: "policy:auto" },
    { event: { type: "ToolCallRejected", callId: "c4", reason: "no" }, by: "user:c1" },
    { event: { type: "ToolExecutionStarted", callId: "c1" }, by: "tool" },
    { event: { type: "ToolExecutionSucceeded", callId: "c1", output: "2", truncated: true }, by: "tool" },
    { event: { type: "ToolExecutionFailed", callId: "c2", error: "ENOENT" }, by: "tool" },
    { event: { type: "ToolExecutionCancelled", callId: "c5", reason: "restart", outcome: "unknown" }, by: "system" },
    { event: { type: "InterruptRequested", reason: "stop" }, by: "user:c1" },
    { event: { type: "ToolCallInvalid", turnId: "t1", callId: "c6", tool: "eval", error: "bad", args: { code: [1, { x: null }] } }, by: "model" },
    { event: { type: "TurnStarted", turnId: "t4", model: "scripted", retryOf: "t3" }, by: "system" },
    { event: { type: "SessionCreated", title: "copy (imported)", importedFrom: { session: "orig", seq: 9 } }, by: "system" },
    { event: { type: "ToolCallReopened", callId: "c7", reason: "approved before the import" }, by: "system" },
    { event: { type: "LoopStopped", reason: "turn_limit", turns: 25 }, by: "system" },
    { event: { type: "LoopStopped", reason: "invalid_calls" }, by: "system" },
    { event: { type: "SessionRenamed", title: "renamed" }, by: "user:c1" },
    { event: { type: "CompactionStarted", upToSeq: 3, tokensBefore: 6_500 }, by: "system" },
    { event: { type: "MemoryCompacted", upToSeq: 3, summary: "Earlier: the user said hi.", tokensBefore: 6_500, tokensAfter: 900 }, by: "model" },
    { event: { type: "MemoryTrimmed", upToSeq: 3, omitted: 2, tokensBefore: 6_500, tokensAfter: 800, reason: "no summary: provider error 500" }, by: "system" },
    { event: { type: "MemoryTrimmed", upToSeq: 4, omitted: 1, tokensBefore: 10, tokensAfter: 5 }, by: "user:c1" },
        { event: { type: "ModelChosen", model: "fast" }, by: "user:c1" }
  ]
  return events.map(({ by, event }, i) => envelope(session, i + 1, event, by))
}

const seqs = (events: ReadonlyArray<Envelope>) => events.map((e) => e.seq)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

// ---- the contract ----

/** A store under test: its layer, and raw access where the layer is backed by SQL. */
interface Subject {
  readonly layer: Layer.Layer<EventStore, StoreError>
  /** Inserts a row behind the store's back (SQL layers), to plant corrupt data. */
  readonly insertRaw?: (row: {
    readonly session: string
    readonly seq: number
    readonly type: string
    readonly payload: string
  }) => Promise<void>
  readonly dispose: () => Promise<void>
}

/** What a layer can do beyond the interface; known up front so the list of tests never depends on setup. */
interface Capabilities {
  /** `insertRaw` is available (SQL layers). */
  readonly raw: boolean
  /** Building the layer again sees the data of a previous build. */
  readonly persistent: boolean
}

const storeContract = (name: string, capabilities: Capabilities, fixture: () => Promise<Subject>) =>
  describe(`EventStore contract: ${name}`, () => {
    let subject: Subject
    beforeEach(async () => {
      subject = await fixture()
    })
    afterEach(async () => {
      await subject.dispose()
    })
    const run = <A, E>(effect: Effect.Effect<A, E, EventStore>): Promise<A> =>
      Effect.runPromise(effect.pipe(Effect.provide(subject.layer)))

    test("roundtrips every event type, byte for byte after decoding", async () => {
      const tape = everyType("s1")
      expect(new Set(tape.map((e) => e.type))).toEqual(new Set(eventTypes))
      const read = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("s1", 0, tape, summaryOf("s1", tape.length, 5))
        return yield* store.read("s1", 0)
      }))
      expect(read).toEqual(tape)
      // One encoding (issue 11): what the writer sends and what any server reads back are the same bytes.
      expect(read.map((e) => JSON.stringify(e))).toEqual(tape.map((e) => JSON.stringify(canonicalEnvelope(e))))
      // Optional fields that were absent stay absent (not undefined-valued keys).
      expect(Object.keys(read[1]!).sort()).toEqual(["at", "by", "seq", "session", "type"])
    })

    test("head of an unknown session is 0 and it has no summary nor events", async () => {
      const [head, summary, events, list, ids] = await run(Effect.gen(function*() {
        const store = yield* EventStore
        return [
          yield* store.head("nobody"),
          yield* store.summary("nobody"),
          yield* store.read("nobody", 0),
          yield* store.listSessions(),
          yield* store.sessionIds()
        ] as const
      }))
      expect(head).toBe(0)
      expect(Option.isNone(summary)).toBe(true)
      expect(events).toEqual([])
      expect(list).toEqual([])
      expect(ids).toEqual([])
    })

    test("read after N and with a limit", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("s", 0, messages("s", 1, 10), summaryOf("s", 10, 1))
        yield* store.append("other", 0, messages("other", 1, 3), summaryOf("other", 3, 1))
        return {
          after4: yield* store.read("s", 4),
          after4limit3: yield* store.read("s", 4, 3),
          after10: yield* store.read("s", 10),
          limit0: yield* store.read("s", 0, 0),
          after8limit5: yield* store.read("s", 8, 5),
          head: yield* store.head("s")
        }
      }))
      expect(seqs(result.after4)).toEqual(range(5, 10))
      expect(result.after4.every((e) => e.session === "s")).toBe(true)
      expect(seqs(result.after4limit3)).toEqual([5, 6, 7])
      expect(result.after10).toEqual([])
      expect(result.limit0).toEqual([])
      expect(seqs(result.after8limit5)).toEqual([9, 10])
      expect(result.head).toBe(10)
    })

    test("an expected-head conflict fails with AppendConflict and appends nothing", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("s", 0, messages("s", 1, 3), summaryOf("s", 3, 10, "first"))
        const behind = yield* Effect.flip(store.append("s", 2, messages("s", 3, 2, "x"), summaryOf("s", 4, 20, "behind")))
        const ahead = yield* Effect.flip(store.append("s", 5, messages("s", 6, 1, "y"), summaryOf("s", 6, 30, "ahead")))
        return {
          behind,
          ahead,
          events: yield* store.read("s", 0),
          head: yield* store.head("s"),
          summary: yield* store.summary("s")
        }
      }))
      expect(result.behind).toBeInstanceOf(AppendConflict)
      expect(result.behind).toMatchObject({ _tag: "AppendConflict", session: "s", expected: 2, actual: 3 })
      expect(result.ahead).toMatchObject({ _tag: "AppendConflict", session: "s", expected: 5, actual: 3 })
      expect(result.events).toEqual(messages("s", 1, 3))
      expect(result.head).toBe(3)
      expect(Option.getOrThrow(result.summary).title).toBe("first")
    })

    test("a malformed batch (gap, wrong session, invalid envelope) is refused whole", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("s", 0, messages("s", 1, 2), summaryOf("s", 2, 10, "ok"))
        const [a, b] = messages("s", 3, 2)
        const gap = yield* Effect.flip(store.append("s", 2, [a!, { ...b!, seq: 6 }], summaryOf("s", 4, 20, "gap")))
        const foreign = yield* Effect.flip(store.append("s", 2, [a!, { ...b!, session: "t" }], summaryOf("s", 4, 20, "x")))
        const badActor = yield* Effect.flip(store.append("s", 2, [a!, { ...b!, by: "nobody at all" }], summaryOf("s", 4, 20, "x")))
        const wrongSummary = yield* Effect.flip(store.append("s", 2, [a!, b!], summaryOf("t", 4, 20, "x")))
        return { gap, foreign, badActor, wrongSummary, head: yield* store.head("s"), summary: yield* store.summary("s") }
      }))
      for (const error of [result.gap, result.foreign, result.badActor, result.wrongSummary]) {
        expect(error).toBeInstanceOf(StoreError)
      }
      expect(result.head).toBe(2)
      expect(Option.getOrThrow(result.summary).title).toBe("ok")
    })

    test("concurrent appends at the same head: exactly one wins, the others get AppendConflict", async () => {
      const contenders = 12
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("s", 0, messages("s", 1, 3), summaryOf("s", 3, 1))
        const outcomes = yield* Effect.all(
          Array.from({ length: contenders }, (_, i) =>
            Effect.either(store.append("s", 3, messages("s", 4, 3, `w${i}-`), summaryOf("s", 6, 2, `winner ${i}`)))),
          { concurrency: "unbounded" }
        )
        return { outcomes, events: yield* store.read("s", 0), summary: yield* store.summary("s") }
      }))
      const winners = result.outcomes.flatMap((o, i) => (Either.isRight(o) ? [i] : []))
      expect(winners.length).toBe(1)
      const losers = result.outcomes.flatMap((o) => (Either.isLeft(o) ? [o.left] : []))
      expect(losers.length).toBe(contenders - 1)
      for (const loser of losers) expect(loser).toMatchObject({ _tag: "AppendConflict", session: "s", expected: 3, actual: 6 })
      const winner = winners[0]!
      expect(result.events).toEqual([...messages("s", 1, 3), ...messages("s", 4, 3, `w${winner}-`)])
      expect(Option.getOrThrow(result.summary).title).toBe(`winner ${winner}`)
    })

    test("seq stays gapless over many appends of varied sizes", async () => {
      const sizes = [1, 3, 1, 7, 2, 1, 5, 1, 1, 4]
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        let head = 0
        for (const size of sizes) {
          yield* store.append("s", head, messages("s", head + 1, size), summaryOf("s", head + size, head))
          head = yield* store.head("s")
        }
        return { events: yield* store.read("s", 0), head }
      }))
      const total = sizes.reduce((a, b) => a + b, 0)
      expect(result.head).toBe(total)
      expect(seqs(result.events)).toEqual(range(1, total))
    })

    test("the summary is upserted with each append; listSessions is most recently updated first", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("a", 0, messages("a", 1, 1), summaryOf("a", 1, 100, "A1"))
        yield* store.append("b", 0, messages("b", 1, 1), summaryOf("b", 1, 300, "B1"))
        yield* store.append("c", 0, messages("c", 1, 1), summaryOf("c", 1, 200, "C1"))
        const before = yield* store.listSessions()
        yield* store.append("a", 1, messages("a", 2, 2), summaryOf("a", 3, 400, "A2"))
        return {
          before,
          after: yield* store.listSessions(),
          a: yield* store.summary("a"),
          ids: yield* store.sessionIds()
        }
      }))
      expect(result.before.map((s) => s.title)).toEqual(["B1", "C1", "A1"])
      expect(result.after.map((s) => s.title)).toEqual(["A2", "B1", "C1"])
      expect(result.after[0]).toEqual(summaryOf("a", 3, 400, "A2"))
      expect(Option.getOrThrow(result.a)).toEqual(summaryOf("a", 3, 400, "A2"))
      expect([...result.ids].sort()).toEqual(["a", "b", "c"])
    })

    test("listSessions pages by (updatedAt, session) and searches titles literally, case-insensitively", async () => {
      const titles: ReadonlyArray<readonly [string, number, string]> = [
        ["a", 500, "Alpha report"],
        ["b", 400, "beta"],
        ["c", 400, "Gamma REPORT"],
        ["d", 300, "100% done_now"],
        ["e", 200, "report 100x done-now"],
        ["f", 100, "zeta"]
      ]
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        for (const [id, at, title] of titles) yield* store.append(id, 0, messages(id, 1, 1), summaryOf(id, 1, at, title))
        const pages: Array<ReadonlyArray<string>> = []
        let before: { updatedAt: number; session: string } | undefined
        for (;;) {
          const page = yield* store.listSessions({ limit: 2, ...(before ? { before } : {}) })
          if (page.length === 0) break
          pages.push(page.map((x) => x.session))
          const last = page.at(-1)!
          before = { updatedAt: last.updatedAt, session: last.session }
        }
        const ids = (list: ReadonlyArray<SessionSummary>) => list.map((x) => x.session)
        return {
          pages,
          all: ids(yield* store.listSessions()),
          report: ids(yield* store.listSessions({ title: "report" })),
          reportPaged: ids(yield* store.listSessions({ title: "REPORT", limit: 1, before: { updatedAt: 500, session: "a" } })),
          percent: ids(yield* store.listSessions({ title: "100%" })),
          underscore: ids(yield* store.listSessions({ title: "e_n" })),
          none: ids(yield* store.listSessions({ title: "%" + "_" })),
          zero: ids(yield* store.listSessions({ limit: 0 }))
        }
      }))
      expect(result.all).toEqual(["a", "b", "c", "d", "e", "f"])
      expect(result.pages).toEqual([["a", "b"], ["c", "d"], ["e", "f"]])
      expect(result.report).toEqual(["a", "c", "e"])
      expect(result.reportPaged).toEqual(["c"])
      // `%` and `_` are literal: "100%" is not "100<anything>", "e_n" is not "e-n".
      expect(result.percent).toEqual(["d"])
      expect(result.underscore).toEqual(["d"])
      expect(result.none).toEqual([])
      expect(result.zero).toEqual([])
    })

    test("listSessions({ text }) finds sessions by title or by what a user wrote; remove deletes a tape for good", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        const said = (id: string, seq: number, text: string) => envelope(id, seq, { type: "UserMessageAdded", messageId: `msg-${seq}`, text }, "user:c1")
        yield* store.append("t1", 0, [envelope("t1", 1, { type: "SessionCreated" }), said("t1", 2, "Where is the KEYSTONE file?")], summaryOf("t1", 2, 30, "files"))
        yield* store.append("t2", 0, [envelope("t2", 1, { type: "SessionCreated" }), said("t2", 2, "hello")], summaryOf("t2", 2, 20, "keystone plans"))
        yield* store.append("t3", 0, [envelope("t3", 1, { type: "SessionCreated" }), said("t3", 2, "50% of it")], summaryOf("t3", 2, 10, "other"))
        const ids = (list: ReadonlyArray<SessionSummary>) => list.map((x) => x.session)
        const found = ids(yield* store.listSessions({ text: "keystone" }))
        const literal = ids(yield* store.listSessions({ text: "0%" }))
        const removed = yield* store.remove("t1")
        const again = yield* store.remove("t1")
        return {
          found,
          literal,
          removed,
          again,
          after: ids(yield* store.listSessions({ text: "keystone" })),
          head: yield* store.head("t1"),
          events: yield* store.read("t1", 0),
          summary: yield* store.summary("t1"),
          others: yield* store.head("t2")
        }
      }))
      expect(result.found).toEqual(["t1", "t2"])
      expect(result.literal).toEqual(["t3"])
      expect(result).toMatchObject({ removed: true, again: false, after: ["t2"], head: 0, events: [], others: 2 })
      expect(result.summary._tag).toBe("None")
    })

    test("listSessions({ forkedFrom }) answers a session's forks (its branches), newest first", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        const fork = (id: string, from: string, at: number) =>
          store.append(id, 0, [envelope(id, 1, { type: "SessionCreated", forkedFrom: { session: from, seq: 3 } })], { ...summaryOf(id, 1, at), forkedFrom: { session: from, seq: 3 } })
        yield* store.append("o", 0, messages("o", 1, 1), summaryOf("o", 1, 1))
        yield* fork("f1", "o", 10)
        yield* fork("f2", "o", 20)
        yield* fork("g", "f1", 30)
        return (yield* store.listSessions({ forkedFrom: "o" })).map((x) => x.session)
      }))
      expect(result).toEqual(["f2", "f1"])
    })

    test("openSessions answers the sessions in the given phases, following each append's summary", async () => {
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        const inPhase = (session: string, head: number, phase: SessionSummary["phase"]) => ({ ...summaryOf(session, head, head), phase })
        yield* store.append("idle", 0, messages("idle", 1, 1), inPhase("idle", 1, "idle"))
        yield* store.append("streams", 0, messages("streams", 1, 1), inPhase("streams", 1, "streaming"))
        yield* store.append("runs", 0, messages("runs", 1, 1), inPhase("runs", 1, "executing"))
        const open = yield* store.openSessions(["streaming", "executing"])
        // The streaming session ends: it leaves the answer.
        yield* store.append("streams", 1, messages("streams", 2, 2), inPhase("streams", 2, "idle"))
        return {
          open: open.map((x) => x.session).sort(),
          after: (yield* store.openSessions(["streaming", "executing"])).map((x) => x.session),
          none: yield* store.openSessions([]),
          summary: (yield* store.openSessions(["executing"]))[0]
        }
      }))
      expect(result).toEqual({ open: ["runs", "streams"], after: ["runs"], none: [], summary: { ...summaryOf("runs", 1, 1), phase: "executing" } })
    })

    test("a 1,000-event batch is appended atomically and read back in order", async () => {
      const batch = messages("big", 1, 1000)
      const result = await run(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("big", 0, batch, summaryOf("big", 1000, 1))
        const all = yield* store.read("big", 0)
        const page = yield* store.read("big", 500, 250)
        const conflict = yield* Effect.flip(store.append("big", 0, batch, summaryOf("big", 1000, 2)))
        return { all, page, conflict, head: yield* store.head("big") }
      }))
      expect(result.all).toEqual(batch)
      expect(seqs(result.page)).toEqual(range(501, 750))
      expect(result.conflict).toMatchObject({ _tag: "AppendConflict", expected: 0, actual: 1000 })
      expect(result.head).toBe(1000)
    })

    if (capabilities.raw) {
      test("a corrupt row fails the read with a StoreError naming session and seq", async () => {
        const insertRaw = subject.insertRaw
        if (insertRaw === undefined) throw new Error(`${name} has no raw access`)
        const setup = Effect.gen(function*() {
          const store = yield* EventStore
          for (const s of ["json", "schema", "type", "array"]) {
            yield* store.append(s, 0, messages(s, 1, 2), summaryOf(s, 2, 1))
          }
        })
        await run(setup)
        await insertRaw({ session: "json", seq: 3, type: "UserMessageAdded", payload: "{not json" })
        await insertRaw({ session: "schema", seq: 3, type: "UserMessageAdded", payload: JSON.stringify({ text: 5 }) })
        await insertRaw({ session: "type", seq: 3, type: "NoSuchEvent", payload: "{}" })
        await insertRaw({ session: "array", seq: 3, type: "UserMessageAdded", payload: "[1,2]" })
        const errors = await run(Effect.gen(function*() {
          const store = yield* EventStore
          const out: Array<StoreError> = []
          for (const s of ["json", "schema", "type", "array"]) out.push(yield* Effect.flip(store.read(s, 0)))
          // The rows before the corrupt one still read fine.
          const before = yield* store.read("json", 0, 2)
          return { out, before }
        }))
        expect(seqs(errors.before)).toEqual([1, 2])
        for (const [i, s] of ["json", "schema", "type", "array"].entries()) {
          const error = errors.out[i]!
          expect(error).toBeInstanceOf(StoreError)
          expect(error).toMatchObject({ session: s, seq: 3 })
          expect(error.message).toContain(`${s}#3`)
        }
      })
    }

    if (capabilities.persistent) {
      test("the data survives closing and reopening the store", async () => {
        const tape = everyType("kept")
        await run(Effect.gen(function*() {
          const store = yield* EventStore
          yield* store.append("kept", 0, tape, summaryOf("kept", tape.length, 7))
        }))
        const again = await run(Effect.gen(function*() {
          const store = yield* EventStore
          return {
            events: yield* store.read("kept", 0),
            head: yield* store.head("kept"),
            list: yield* store.listSessions()
          }
        }))
        expect(again.events).toEqual(tape)
        expect(again.head).toBe(tape.length)
        expect(again.list).toEqual([summaryOf("kept", tape.length, 7)])
      })
    }
  })

// ---- the row codec's fast path agrees with the schema ----

describe("EventStore row codec", () => {
  /** Every envelope of `everyType`, and variants of it that are wrong (or merely untidy) in one place each. */
  const variants = (): Array<Record<string, unknown>> => {
    const out: Array<Record<string, unknown>> = []
    for (const envelope of everyType("s")) {
      const base: Record<string, unknown> = { ...envelope }
      out.push(base)
      for (const key of Object.keys(base)) {
        if (key === "type") continue
        const { [key]: _dropped, ...without } = base
        out.push(without)
        const value = base[key]
        out.push({ ...base, [key]: typeof value === "string" ? 5 : "x" })
        out.push({ ...base, [key]: null })
        if (typeof value === "string") out.push({ ...base, [key]: "" })
        if (typeof value === "object" && value !== null && !Array.isArray(value)) out.push({ ...base, [key]: { ...value, extra: 1 } })
        if (Array.isArray(value)) out.push({ ...base, [key]: [...value, 7] })
      }
      out.push({ ...base, extra: "kept out" })
      out.push({ ...base, seq: 0 }, { ...base, seq: 1.5 }, { ...base, by: "user:" }, { ...base, by: "policy:a b" })
      out.push({ ...base, by: "user:x".padEnd(200, "y") })
    }
    return out
  }

  test("accepts and returns exactly what the Envelope schema decodes, and refuses what it refuses", () => {
    const cases = variants()
    expect(cases.length).toBeGreaterThan(300)
    let accepted = 0
    for (const candidate of cases) {
      const { session, seq, at, by, type, ...payload } = candidate
      const viaRow = fromRow(session, seq, at, by, type, JSON.stringify(payload))
      const viaSchema = decodeEnvelope(candidate)
      expect([Either.isRight(viaRow), candidate]).toEqual([Either.isRight(viaSchema), candidate])
      if (Either.isRight(viaRow) && Either.isRight(viaSchema)) {
        accepted++
        expect(viaRow.right).toEqual(viaSchema.right)
        expect(Object.keys(viaRow.right).sort()).toEqual(Object.keys(viaSchema.right).sort())
      }
    }
    // Both outcomes are exercised.
    expect(accepted).toBeGreaterThan(everyType("s").length)
    expect(accepted).toBeLessThan(cases.length)
  })
})

// ---- the layers ----

storeContract("memory", { raw: false, persistent: false }, async () => ({ layer: layerMemory, dispose: async () => {} }))

storeContract("sqlite", { raw: true, persistent: true }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tape-store-"))
  // A nested folder the layer must create itself.
  const filename = join(dir, "nested", "data", "tape.sqlite")
  return {
    layer: layerSqlite({ filename }),
    insertRaw: async (row) => {
      const db = new Database(filename)
      try {
        db.query(`INSERT INTO events (session, seq, at, "by", type, payload) VALUES (?, ?, ?, ?, ?, ?)`)
          .run(row.session, row.seq, 1, "system", row.type, row.payload)
      } finally {
        db.close()
      }
    },
    dispose: async () => rmSync(dir, { recursive: true, force: true })
  }
})

if (databaseUrl !== undefined) {
  const url = databaseUrl
  storeContract("postgres", { raw: true, persistent: true }, async () => {
    const schema = await freshSchema(url)
    return {
      layer: layerPg({ url: schema.url }),
      insertRaw: (row) =>
        runSql(
          schema.url,
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql`INSERT INTO events (session, seq, at, "by", type, payload)
              VALUES (${row.session}, ${row.seq}, 1, 'system', ${row.type}, ${row.payload})`)
        ).then(() => undefined),
      dispose: schema.drop
    }
  })
} else {
  describe.skip("EventStore contract: postgres — SKIPPED because DATABASE_URL is not set", () => {
    test.skip("set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to run the PostgreSQL contract", () => {})
  })
}

// ---- migrations ----

describe("SQLite migration 3 (sessions.title)", () => {
  test("a database of version 2 gets its titles backfilled, searchable and in the list's order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tape-migrate-"))
    const filename = join(dir, "tape.sqlite")
    try {
      const db = new Database(filename)
      db.run(`CREATE TABLE tape_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
      db.run(`CREATE TABLE events (session TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, "by" TEXT NOT NULL,
        type TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (session, seq))`)
      db.run(`CREATE TABLE sessions (session TEXT PRIMARY KEY NOT NULL, summary TEXT NOT NULL, head INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, phase TEXT NOT NULL DEFAULT 'idle')`)
      db.run(`CREATE INDEX sessions_updated_at ON sessions (updated_at DESC)`)
      db.run(`CREATE INDEX sessions_phase ON sessions (phase)`)
      db.run(`INSERT INTO tape_migrations VALUES (1, 'events and sessions'), (2, 'sessions.phase')`)
      for (const [id, at, title] of [["old1", 10, "Old Report"], ["old2", 20, "other"]] as const) {
        db.query(`INSERT INTO sessions (session, summary, head, updated_at) VALUES (?, ?, 1, ?)`)
          .run(id, JSON.stringify(summaryOf(id, 1, at, title)), at)
      }
      db.close()
      const found = await Effect.runPromise(
        Effect.gen(function*() {
          const store = yield* EventStore
          return {
            all: (yield* store.listSessions()).map((s) => s.session),
            report: (yield* store.listSessions({ title: "report" })).map((s) => s.session)
          }
        }).pipe(Effect.provide(layerSqlite({ filename })))
      )
      expect(found).toEqual({ all: ["old2", "old1"], report: ["old1"] })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
