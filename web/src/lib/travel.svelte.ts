/**
 * Time travel over the shown tape: which seq is being looked at (null = live), and what the session was there:
 * the chat, the exact LLM memory, the summary and the diff the event made, all re-folded on the client.
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

export class Travel {
  private target = $state<{ readonly session: string; readonly seq: number } | null>(null)
  private rewinder: Rewinder | null = null
  private epoch = -1
  private readonly builder = new ChatBuilder()

  constructor(private readonly tape: Tape) {}

  /** The seq looked at, or null when live (or when the session changed since). */
  seq: number | null = $derived.by(() => {
    const t = this.target
    return t !== null && t.session === this.tape.session ? t.seq : null
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

  select(seq: number): void {
    const session = this.tape.session
    if (session === null || this.tape.head === 0) return
    this.target = { session, seq: Math.max(1, Math.min(Math.round(seq), this.tape.head)) }
  }

  live(): void {
    this.target = null
  }
}
