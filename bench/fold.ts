/**
 * Rows 1, 2 and 8b: the pure domain. Fold throughput of AssistantDelta events (evolve through the three reducers and
 * the projections, plus uiView per event), its cost with 10,000 earlier messages, and the replay of a 1M-event tape.
 */
import type { Envelope } from "../src/domain/Event.ts"
import { uiView } from "../src/domain/projections/ui.ts"
import { evolve, fold, type SessionState } from "../src/domain/state.ts"
import { fixed, progress, showSpread, si, spread } from "./lib/stats.ts"
import { tape, tapeArray } from "./lib/tapes.ts"
import type { Options, Row } from "./types.ts"

/** A state with `history` earlier messages, mid-turn, and the deltas to fold into it next. */
const prepare = (history: number, deltas: number): { state: SessionState; events: Array<Envelope> } => {
  const session = "fold"
  const before = tapeArray(session, { messages: history, deltasPerTurn: 20, toolEvery: 5 })
  const state = fold(session, before)
  let seq = state.head
  const turnId = `turn-${seq + 2}`
  const events: Array<Envelope> = [
    { session, seq: ++seq, at: 1, by: "user:c1", type: "UserMessageAdded", messageId: `msg-${seq}`, text: "go" },
    { session, seq: ++seq, at: 1, by: "system", type: "TurnStarted", turnId, model: "bench" }
  ]
  for (const e of events) evolve(state, e)
  const out: Array<Envelope> = new Array(deltas)
  for (let i = 0; i < deltas; i++) out[i] = { session, seq: ++seq, at: 1, by: "model", type: "AssistantDelta", turnId, text: "abcd" }
  return { state, events: out }
}

let sink = 0

/** ns per event of evolve + uiView over `events`. */
const timeFold = (state: SessionState, events: ReadonlyArray<Envelope>): number => {
  const t0 = Bun.nanoseconds()
  for (let i = 0; i < events.length; i++) {
    evolve(state, events[i]!)
    const v = uiView(state)
    sink += v.head + v.items.length
  }
  return (Bun.nanoseconds() - t0) / events.length
}

export const run = async (opts: Options): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  const runs = opts.full ? 11 : 7
  const n = 500_000

  // Rows 1 and 2: interleave the empty and the 10,000-message states, so both see the same machine state.
  progress("rows 1–2: fold throughput")
  for (let w = 0; w < 3; w++) {
    const a = prepare(0, n)
    timeFold(a.state, a.events)
    const b = prepare(10_000, n)
    timeFold(b.state, b.events)
  }
  const empty: Array<number> = []
  const loaded: Array<number> = []
  const ratios: Array<number> = []
  for (let r = 0; r < runs; r++) {
    const a = prepare(0, n)
    const b = prepare(10_000, n)
    // A full collection first, so one run's garbage is not charged to the next.
    Bun.gc(true)
    const ea = timeFold(a.state, a.events)
    Bun.gc(true)
    const eb = timeFold(b.state, b.events)
    empty.push(ea)
    loaded.push(eb)
    ratios.push(eb / ea)
  }
  const rate = spread(empty.map((ns) => 1e9 / ns))
  rows.push({
    id: "1",
    name: "fold throughput: AssistantDelta through evolve (3 reducers + memory + counters) + uiView per event",
    figure: `${showSpread(rate, si, " events/s")} (${showSpread(spread(empty), fixed(0), " ns/event")}; ${n.toLocaleString("en")} deltas per run)`,
    target: "≥ 1,000,000 events/s",
    met: rate.median >= 1_000_000,
    detail: { nsPerEvent: empty }
  })
  const ratio = spread(ratios)
  rows.push({
    id: "2",
    name: "per-event fold cost with 10,000 earlier messages vs none",
    figure: `${showSpread(spread(loaded), fixed(0), " ns")} vs ${showSpread(spread(empty), fixed(0), " ns")}: ratio ${showSpread(ratio, fixed(2))}`,
    target: "ratio ≤ 1.3",
    met: ratio.median <= 1.3,
    detail: { loaded, empty, ratios }
  })

  // Row 8b: replay of a 1,000,000-event tape (fold only; the events are already decoded).
  progress("row 8b: replay of a 1,000,000-event tape")
  const big: Array<Envelope> = []
  for (const e of tape("replay", { messages: 1_000_000, deltasPerTurn: 50, toolEvery: 4 })) {
    big.push(e)
    if (big.length === 1_000_000) break
  }
  fold("replay", big.slice(0, 100_000))
  const replay: Array<number> = []
  for (let r = 0; r < (opts.full ? 5 : 3); r++) {
    Bun.gc(true)
    const t0 = Bun.nanoseconds()
    const s = fold("replay", big)
    replay.push((Bun.nanoseconds() - t0) / 1e6)
    sink += s.head
  }
  const rs = spread(replay)
  rows.push({
    id: "8b",
    name: "replay of a 1,000,000-event tape (fold, events in memory)",
    figure: `${showSpread(rs, fixed(0), " ms")} (${si(1e6 / (rs.median / 1000))} events/s)`,
    target: "≤ 2 s",
    met: rs.median <= 2000,
    detail: { replayMs: replay }
  })
  if (sink === -1) progress("unreachable")
  return rows
}
