/**
 * The timeline's filtered index: positions in the tape of the events that pass the type and actor filters.
 * Extended incrementally as events arrive (O(new events)); rebuilt only when a filter changes.
 */
import type { Envelope } from "../../../src/domain/Event.ts"
import { actorKind } from "./describe.ts"

export interface Filter {
  /** Event type, or "" for all. */
  readonly type: string
  /** Actor family (`user`, `model`, …), or "" for all. */
  readonly actor: string
}

export class FilterIndex {
  private filter: Filter = { type: "", actor: "" }
  private scanned = 0
  private readonly hits: Array<number> = []

  get isAll(): boolean {
    return this.filter.type === "" && this.filter.actor === ""
  }

  /** Brings the index up to date with `events` under `filter`; returns the number of matching rows. */
  sync(events: ReadonlyArray<Envelope>, filter: Filter): number {
    if (filter.type !== this.filter.type || filter.actor !== this.filter.actor || events.length < this.scanned) {
      this.filter = filter
      this.scanned = 0
      this.hits.length = 0
    }
    if (this.isAll) {
      this.scanned = events.length
      return events.length
    }
    for (let i = this.scanned; i < events.length; i++) {
      const e = events[i]
      if (!e) continue
      if ((filter.type === "" || e.type === filter.type) && (filter.actor === "" || actorKind(e.by) === filter.actor)) this.hits.push(i)
    }
    this.scanned = events.length
    return this.hits.length
  }

  /** Tape position of the row-th matching event. */
  at(row: number): number {
    return this.isAll ? row : (this.hits[row] ?? -1)
  }

  /** Row of the first matching event at or after tape position `pos` (for scrolling to a selection). */
  rowOf(pos: number): number {
    if (this.isAll) return pos
    let lo = 0
    let hi = this.hits.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((this.hits[mid] ?? Infinity) < pos) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
