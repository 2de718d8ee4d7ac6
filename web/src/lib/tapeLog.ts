/**
 * The client's copy of one session's tape (seq 1..head, gapless) and its live folded state, folded with the
 * shared reducers. Plain and mutable for O(1) per event; the rune wrapper (tape.svelte.ts) makes it observable.
 */
import type { Envelope } from "../../../src/domain/Event.ts"
import { evolve, initialState, isBusy, type SessionState } from "../../../src/domain/state.ts"

export interface AppendResult {
  /** Events folded from this batch. */
  readonly added: number
  /** Set when the batch skipped seqs: the head to ask again from. */
  readonly gapAfter: number | null
}

export class TapeLog {
  session: string | null = null
  /** Every event seen, in seq order; `events[i].seq === i + 1`. */
  readonly events: Array<Envelope> = []
  state: SessionState = initialState("")
  /** Seq of the event that last took the session from idle to busy (null while idle): one busy period's identity. */
  busySince: number | null = null

  get head(): number {
    return this.events.length
  }

  reset(session: string | null): void {
    this.session = session
    this.events.length = 0
    this.state = initialState(session ?? "")
    this.busySince = null
  }

  /** Folds a batch in order; repeats (seq ≤ head) are skipped, a gap stops the batch so the owner can resync. */
  append(batch: ReadonlyArray<Envelope>): AppendResult {
    let added = 0
    for (const e of batch) {
      if (e.seq <= this.head) continue
      if (e.seq !== this.head + 1) return { added, gapAfter: this.head }
      this.events.push(e)
      evolve(this.state, e)
      const busy = isBusy(this.state)
      if (!busy) this.busySince = null
      else if (this.busySince === null) this.busySince = e.seq
      added++
    }
    return { added, gapAfter: null }
  }
}
