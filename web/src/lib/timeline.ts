/**
 * The timeline's rows, grouped by turn: a header per model turn, the turn's `AssistantDelta` events folded into one
 * row (expandable), and include/exclude filters by type and actor. Built incrementally as events arrive (O(new
 * events)); rebuilt only when the view (filters, collapsed or expanded turns) changes. Pure and framework-free.
 */
import type { Envelope } from "../../../src/domain/Event.ts"
import type { ActorClass } from "./actors.ts"

export type FilterMode = "include" | "exclude"

/** Per dimension: values to show only (`include`, any of them) and values to hide (`exclude`). */
export interface TimelineFilter {
  readonly types: ReadonlyMap<string, FilterMode>
  readonly actors: ReadonlyMap<ActorClass, FilterMode>
}

export const noFilter: TimelineFilter = { types: new Map(), actors: new Map() }

/** What one model turn did, kept for its header and its deltas row. */
export interface TurnStats {
  readonly turnId: string
  /** 1 for the tape's first turn. */
  readonly n: number
  readonly model: string
  readonly startedAt: number
  endedAt: number | null
  status: "streaming" | "completed" | "interrupted" | "failed"
  usage: { readonly inputTokens: number; readonly outputTokens: number } | null
  deltas: number
  chars: number
  firstDeltaAt: number | null
  lastDeltaAt: number | null
  calls: number
}

export type Row =
  /** A turn's header; `pos` is the tape position of its first shown event. */
  | { readonly kind: "turn"; readonly turnId: string; readonly pos: number }
  /** A turn's deltas as one row, at the position of its first delta. */
  | { readonly kind: "deltas"; readonly turnId: string; readonly pos: number }
  | { readonly kind: "event"; readonly pos: number; readonly turnId: string | null }

/** How the timeline is looked at. A new object means a new view: the rows are rebuilt. */
export interface TimelineView {
  readonly filter: TimelineFilter
  /** The actor family of an event's `by` (who "you" are is the page's knowledge). */
  readonly classify: (by: string) => ActorClass
  /** Turns shown as their header only. */
  readonly collapsed: ReadonlySet<string>
  /** Turns whose deltas are listed one by one (under their deltas row). */
  readonly expanded: ReadonlySet<string>
}

const hasInclude = (m: ReadonlyMap<unknown, FilterMode>): boolean => {
  for (const v of m.values()) if (v === "include") return true
  return false
}

const passesOne = <K>(m: ReadonlyMap<K, FilterMode>, k: K, includes: boolean): boolean => {
  const mode = m.get(k)
  return mode !== "exclude" && (!includes || mode === "include")
}

export class TimelineIndex {
  private readonly turns = new Map<string, TurnStats>()
  private readonly turnOfCall = new Map<string, string>()
  private statsScanned = 0
  private epoch = -1

  private view: TimelineView | null = null
  private includesType = false
  private includesActor = false
  private scanned = 0
  private readonly rows: Array<Row> = []
  private readonly headerRow = new Map<string, number>()
  private readonly deltasRow = new Map<string, number>()
  /** Events that pass the filter. */
  matched = 0

  /** Brings the rows up to date with `events` (a tape that only grows within one `epoch`); answers the row count. */
  sync(events: ReadonlyArray<Envelope>, view: TimelineView, epoch: number): number {
    if (epoch !== this.epoch || events.length < this.statsScanned) {
      this.epoch = epoch
      this.turns.clear()
      this.turnOfCall.clear()
      this.statsScanned = 0
      this.view = null
    }
    for (let i = this.statsScanned; i < events.length; i++) {
      const e = events[i]
      if (e) this.count(e)
    }
    this.statsScanned = events.length
    if (view !== this.view) {
      this.view = view
      this.includesType = hasInclude(view.filter.types)
      this.includesActor = hasInclude(view.filter.actors)
      this.scanned = 0
      this.matched = 0
      this.rows.length = 0
      this.headerRow.clear()
      this.deltasRow.clear()
    }
    for (let i = this.scanned; i < events.length; i++) {
      const e = events[i]
      if (e) this.place(e, i, view)
    }
    this.scanned = events.length
    return this.rows.length
  }

  row(i: number): Row | undefined {
    return this.rows[i]
  }

  /** A copy of a turn's stats: the stats change in place as events arrive, and a view compares what it gets. */
  turn(turnId: string): Readonly<TurnStats> | undefined {
    const t = this.turns.get(turnId)
    return t === undefined ? undefined : { ...t }
  }

  /** The turn an event belongs to: its own `turnId`, or the turn that requested its tool call. */
  turnOf(e: Envelope): string | null {
    if ("turnId" in e) return e.turnId
    if ("callId" in e) return this.turnOfCall.get(e.callId) ?? null
    return null
  }

  passes(e: Envelope): boolean {
    const v = this.view
    if (v === null) return true
    return passesOne(v.filter.types, e.type, this.includesType) && passesOne(v.filter.actors, v.classify(e.by), this.includesActor)
  }

  /** The row that shows the event at tape position `pos` (its turn's header or deltas row when folded), or -1. */
  rowOf(events: ReadonlyArray<Envelope>, pos: number): number {
    const e = events[pos]
    const v = this.view
    if (!e || v === null || !this.passes(e)) return -1
    const turn = this.turnOf(e)
    if (turn !== null && v.collapsed.has(turn)) return this.headerRow.get(turn) ?? -1
    if (turn !== null && e.type === "AssistantDelta" && !v.expanded.has(turn)) return this.deltasRow.get(turn) ?? -1
    let lo = 0
    let hi = this.rows.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((this.rows[mid]?.pos ?? Infinity) <= pos) lo = mid + 1
      else hi = mid
    }
    const r = this.rows[lo - 1]
    return r?.kind === "event" && r.pos === pos ? lo - 1 : -1
  }

  private count(e: Envelope): void {
    switch (e.type) {
      case "TurnStarted":
        this.turns.set(e.turnId, {
          turnId: e.turnId,
          n: this.turns.size + 1,
          model: e.model,
          startedAt: e.at,
          endedAt: null,
          status: "streaming",
          usage: null,
          deltas: 0,
          chars: 0,
          firstDeltaAt: null,
          lastDeltaAt: null,
          calls: 0
        })
        return
      case "AssistantDelta": {
        const t = this.turns.get(e.turnId)
        if (!t) return
        t.deltas++
        t.chars += e.text.length
        t.firstDeltaAt ??= e.at
        t.lastDeltaAt = e.at
        return
      }
      case "ToolCallRequested":
      case "ToolCallInvalid": {
        this.turnOfCall.set(e.callId, e.turnId)
        const t = this.turns.get(e.turnId)
        if (t) t.calls++
        return
      }
      case "TurnCompleted":
      case "TurnInterrupted":
      case "TurnFailed": {
        const t = this.turns.get(e.turnId)
        if (!t) return
        t.endedAt = e.at
        t.status = e.type === "TurnCompleted" ? "completed" : e.type === "TurnInterrupted" ? "interrupted" : "failed"
        if (e.type === "TurnCompleted" && e.usage) t.usage = e.usage
        return
      }
      default:
        return
    }
  }

  private place(e: Envelope, pos: number, v: TimelineView): void {
    if (!this.passes(e)) return
    this.matched++
    const turn = this.turnOf(e)
    if (turn === null) {
      this.rows.push({ kind: "event", pos, turnId: null })
      return
    }
    if (!this.headerRow.has(turn)) {
      this.headerRow.set(turn, this.rows.length)
      this.rows.push({ kind: "turn", turnId: turn, pos })
    }
    if (v.collapsed.has(turn)) return
    if (e.type === "AssistantDelta") {
      if (!this.deltasRow.has(turn)) {
        this.deltasRow.set(turn, this.rows.length)
        this.rows.push({ kind: "deltas", turnId: turn, pos })
      }
      if (!v.expanded.has(turn)) return
    }
    this.rows.push({ kind: "event", pos, turnId: turn })
  }
}
