/**
 * Rows 6 and 8a: the EventStore layers. A burst of deltas through the SessionWriter (batching per tick counts) and
 * raw `append` calls, on SQLite and (with DATABASE_URL) PostgreSQL; the cold open of a 10,000-event session.
 */
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Deferred, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import type { Rejection } from "../src/domain/Command.ts"
import type { DecideContext } from "../src/domain/decide.ts"
import type { Envelope } from "../src/domain/Event.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import { evolve, fold, initialState } from "../src/domain/state.ts"
import * as Bus from "../src/session/Bus.ts"
import * as SessionWriter from "../src/session/SessionWriter.ts"
import { EventStore, type StoreError } from "../src/store/EventStore.ts"
import { layerPg } from "../src/store/pg.ts"
import { layerSqlite } from "../src/store/sqlite.ts"
import { tempDir } from "./lib/server.ts"
import { fixed, progress, showSpread, si, spread } from "./lib/stats.ts"
import { tapeArray } from "./lib/tapes.ts"
import type { Options, Row } from "./types.ts"

const context: DecideContext = { model: "bench", checkTool: () => ({ ok: false, error: "no tools in this bench" }) }

const writerLayer = (store: Layer.Layer<EventStore, StoreError>) =>
  SessionWriter.layer.pipe(
    Layer.provideMerge(Bus.layer),
    Layer.provideMerge(Layer.merge(store, Layer.succeed(SessionWriter.WriterContext, context)))
  )

/** Events per second of a burst of `n` model deltas offered to the writer at once (one turn streaming). */
const writerBurst = (n: number) =>
  Effect.gen(function* () {
    const writer = yield* SessionWriter.SessionWriter
    const session = yield* writer.create()
    const ack = yield* writer.submit(session, { type: "send_message", text: "go" }, "user:bench")
    const started = ack.events.find((e) => e.type === "TurnStarted")
    if (started?.type !== "TurnStarted") return yield* Effect.dieMessage("no TurnStarted")
    const turnId = started.turnId
    const t0 = performance.now()
    let last: Deferred.Deferred<SessionWriter.Ack, Rejection | StoreError> | null = null
    for (let i = 0; i < n; i++) last = yield* writer.offer(session, { type: "model_delta", turnId, text: "abcd" }, "model")
    if (last) yield* Deferred.await(last)
    const ms = performance.now() - t0
    const head = yield* writer.inspect(session, (s) => s.head)
    if (head !== ack.head + n) return yield* Effect.dieMessage(`expected head ${ack.head + n}, got ${head}`)
    return (n / ms) * 1000
  })

/** Events per second of `n` raw appends of `batch` deltas each, one after the other, with the real summary. */
const rawAppend = (n: number, batch: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const session = `raw${crypto.randomUUID().slice(0, 8)}`
    const state = initialState(session)
    const first: Array<Envelope> = [
      { session, seq: 1, at: 1, by: "system", type: "SessionCreated" },
      { session, seq: 2, at: 1, by: "system", type: "TurnStarted", turnId: "turn-2", model: "bench" }
    ]
    for (const e of first) evolve(state, e)
    yield* store.append(session, 0, first, summaryView(state))
    const t0 = performance.now()
    for (let i = 0; i < n; i++) {
      const base = state.head
      const events: Array<Envelope> = []
      for (let j = 0; j < batch; j++) events.push({ session, seq: base + j + 1, at: 2, by: "model", type: "AssistantDelta", turnId: "turn-2", text: "abcd" })
      for (const e of events) evolve(state, e)
      yield* store.append(session, base, events, summaryView(state))
    }
    return ((n * batch) / (performance.now() - t0)) * 1000
  })

/** store.read + fold of one session of `events` events (written first), ms: [read, fold]. */
const coldOpen = (events: number, runs: number) =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const session = `cold${crypto.randomUUID().slice(0, 8)}`
    const all = tapeArray(session, { messages: Math.ceil(events / 25), deltasPerTurn: 50, toolEvery: 4 }).slice(0, events)
    const state = initialState(session)
    for (let i = 0; i < all.length; i += 1000) {
      const part = all.slice(i, i + 1000)
      const base = state.head
      for (const e of part) evolve(state, e)
      yield* store.append(session, base, part, summaryView(state))
    }
    const out: Array<{ read: number; fold: number }> = []
    for (let r = 0; r < runs + 1; r++) {
      const t0 = performance.now()
      const read = yield* store.read(session, 0)
      const t1 = performance.now()
      const s = fold(session, read)
      const t2 = performance.now()
      if (s.head !== events) return yield* Effect.dieMessage(`cold open folded ${s.head} events, expected ${events}`)
      // The first open pays for JIT warm-up of the decoder; it is not counted.
      if (r > 0) out.push({ read: t1 - t0, fold: t2 - t1 })
    }
    return out
  })

/** A fresh schema on the PostgreSQL server, dropped afterwards (as test/support/pg.ts does). */
const pgSchema = async (url: string) => {
  const schema = `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
  const exec = (sql: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (c) => c.unsafe(sql)).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })),
        Effect.orDie
      )
    )
  await exec(`CREATE SCHEMA ${schema}`)
  const u = new URL(url)
  u.searchParams.set("options", `-c search_path=${schema}`)
  return { url: u.toString(), drop: () => exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => undefined) }
}

interface StoreFigures {
  readonly writer: Array<number>
  readonly raw1: Array<number>
  readonly raw100: Array<number>
}

const measureStore = async (name: string, store: Layer.Layer<EventStore, StoreError>, opts: Options): Promise<StoreFigures> => {
  const rt = ManagedRuntime.make(writerLayer(store))
  try {
    const runs = opts.full ? 5 : 3
    const burst = opts.full ? 50_000 : 20_000
    await rt.runPromise(writerBurst(burst))
    const writer: Array<number> = []
    const raw1: Array<number> = []
    const raw100: Array<number> = []
    for (let r = 0; r < runs; r++) {
      progress(`row 6 ${name}: run ${r + 1}/${runs}`)
      writer.push(await rt.runPromise(writerBurst(burst)))
      raw1.push(await rt.runPromise(rawAppend(opts.full ? 5_000 : 2_000, 1)))
      raw100.push(await rt.runPromise(rawAppend(opts.full ? 500 : 200, 100)))
    }
    return { writer, raw1, raw100 }
  } finally {
    await rt.dispose()
  }
}

const storeRow = (id: string, name: string, f: StoreFigures, target: number): Row => {
  const w = spread(f.writer)
  return {
    id,
    name,
    figure:
      `SessionWriter burst ${showSpread(w, si, " events/s")}; raw append, 1 event per call ${showSpread(spread(f.raw1), si, "/s")}, ` +
      `100 per call ${showSpread(spread(f.raw100), si, "/s")}`,
    target: `≥ ${target.toLocaleString("en")} events/s (writer burst)`,
    met: w.median >= target,
    detail: f
  }
}

export const run = async (opts: Options): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  const dir = tempDir("store")
  const sqlite = layerSqlite({ filename: join(dir, "tape.sqlite") })
  rows.push(storeRow("6 (SQLite)", "SQLite append throughput, burst of deltas", await measureStore("SQLite", sqlite, opts), 50_000))

  const url = process.env.DATABASE_URL?.trim()
  if (url) {
    const schema = await pgSchema(url)
    try {
      rows.push(storeRow("6 (PostgreSQL)", "PostgreSQL append throughput, burst of deltas", await measureStore("PostgreSQL", layerPg({ url: schema.url }), opts), 20_000))
    } finally {
      await schema.drop()
    }
  } else {
    rows.push({ id: "6 (PostgreSQL)", name: "PostgreSQL append throughput", figure: "not run: DATABASE_URL is not set", target: "≥ 20,000 events/s", met: null })
  }

  progress("row 8a: cold open of a 10,000-event session (SQLite)")
  const rt = ManagedRuntime.make(layerSqlite({ filename: join(dir, "cold.sqlite") }))
  try {
    const opens = await rt.runPromise(coldOpen(10_000, opts.full ? 9 : 5))
    const total = spread(opens.map((o) => o.read + o.fold))
    rows.push({
      id: "8a",
      name: "cold open of a session with 10,000 events (SQLite read + decode + fold)",
      figure: `${showSpread(total, fixed(1), " ms")} (read+decode ${fixed(1)(spread(opens.map((o) => o.read)).median)} ms, fold ${fixed(2)(spread(opens.map((o) => o.fold)).median)} ms)`,
      target: "≤ 50 ms",
      met: total.median <= 50,
      detail: opens
    })
  } finally {
    await rt.dispose()
  }
  return rows
}
