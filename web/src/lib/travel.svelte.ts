/**
 * Time travel over the shown tape: which seq is being looked at (null = live), and what the session was there:
 * the chat, the exact LLM memory, the summary and the diff the event made, all re-folded on the client. Also which
 * event is inspected: inspecting is not travelling (the chat stays live until a past state is asked for).
 */
import type { ChatView } from "./chatView.ts"
import { ChatBuilder } from "./chatView.ts"
import { inspect, type Inspection, Rewinder } from "./rewind.ts"
import type { Tape } from "./tape.svelte.ts"

export interface TravelView {
  readonly seq: number
  readonly inspection: Inspection
  readonly chat: ChatView
}

type Mark = { readonly session: string; readonly seq: number } | null

export class Travel {
  /** The past state asked for (time travel); null = live. */
  private target = $state<Mark>(null)
  /** The event looked at in the timeline, beside the live chat or the past one. */
  private picked = $state<Mark>(null)
  private rewinder: Rewinder | null = null
  private epoch = -1
  private readonly builder = new ChatBuilder()

  constructor(private readonly tape: Tape) {}

  /** The seq looked at, or null when live (or when the session changed since). */
  seq: number | null = $derived.by(() => {
    const t = this.target
    return t !== null && t.session === this.tape.session ? t.seq : null
  })

  /** The event being inspected (shown beside the chat), or null. */
  inspected: number | null = $derived.by(() => {
    const p = this.picked
    return p !== null && p.session === this.tape.session && p.seq <= this.tape.head ? p.seq : null
  })

  view: TravelView | null = $derived.by(() => {
    const seq = this.seq
    const session = this.tape.session
    if (seq === null || session === null) return null
    const epoch = this.tape.epoch
    // Only the prefix up to `seq` is read, and a tape only grows between resets: no need to track new events.
    const events = this.tape.log.events
    if (events.length < seq) return null
    if (this.rewinder === null || this.epoch !== epoch) {
      this.rewinder = new Rewinder(session)
      this.epoch = epoch
      this.builder.clear()
    }
    const inspection = inspect(this.rewinder, events, seq)
    if (inspection === null) return null
    return { seq, inspection, chat: this.builder.build(this.rewinder.stateAt(events, seq)) }
  })

  private mark(seq: number): Mark {
    const session = this.tape.session
    if (session === null || this.tape.head === 0) return null
    return { session, seq: Math.max(1, Math.min(Math.round(seq), this.tape.head)) }
  }

  /** Time travel: show the session as it was at `seq` (and inspect that event). */
  select(seq: number): void {
    const m = this.mark(seq)
    if (m === null) return
    this.target = m
    this.picked = m
  }

  /** Inspect an event: beside the live chat when live; while travelling, travel there too. */
  pick(seq: number): void {
    if (this.seq !== null) this.select(seq)
    else this.picked = this.mark(seq)
  }

  /** Stop inspecting (time travel, if any, goes on). */
  unpick(): void {
    if (this.seq === null) this.picked = null
  }

  live(): void {
    this.target = null
  }
}
