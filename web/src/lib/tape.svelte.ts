/**
 * The shown session's tape, made observable: the folded state mutates in place (O(1) per event), so views depend on
 * `version`, bumped at most once per animation frame, and not at all while a catch-up is still arriving.
 * Written only by the connection module (reset/expect/apply); components read.
 */
import type { Envelope } from "../../../src/domain/Event.ts"
import { summaryView } from "../../../src/domain/projections/summary.ts"
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"
import { type Activity, activityOf, RateMeter } from "./activity.ts"
import { ChatBuilder, type ChatView } from "./chatView.ts"
import { emptyPulse, type Pulse, pulseOf } from "./flow.ts"
import { type AppendResult, TapeLog } from "./tapeLog.ts"

export class Tape {
  readonly log = new TapeLog()
  private readonly builder = new ChatBuilder()

  /** Bumped once per published batch. */
  version = $state(0)
  /** Bumped on every reset: the tape may have been replaced even when the session id is the same. */
  epoch = $state(0)
  session = $state<string | null>(null)
  /** The published head (what views show). */
  head = $state(0)
  /** False from a reset until the catch-up announced by the welcome is folded. */
  ready = $state(false)
  /** Events folded so far during a catch-up, and how many it will bring. */
  loaded = $state(0)
  catchUpTo = $state(0)
  /** The paths the last batch took through the flow. */
  pulse = $state.raw<Pulse>(emptyPulse)
  /** Seq that began the current busy period (null while idle); a new value is a new busy period. */
  busySince = $state<number | null>(null)
  private readonly rate = new RateMeter()

  chat: ChatView = $derived.by(() => {
    void this.version
    return this.builder.build(this.log.state)
  })

  summary: SessionSummary = $derived.by(() => {
    void this.version
    return summaryView(this.log.state)
  })

  activity: Activity = $derived.by(() => {
    void this.version
    return activityOf(this.log.state)
  })

  /** Live events per second at `now` (performance.now()), over the last few seconds of arrivals. */
  ratePerSecond(now: number): number {
    void this.version
    return this.rate.perSecond(now)
  }

  /** The tape so far; reading it in a reactive context tracks new events. */
  get events(): ReadonlyArray<Envelope> {
    void this.version
    return this.log.events
  }

  /** Head when views last saw the tape; events after it make the next pulse. */
  private published = 0
  private scheduled = false

  reset(session: string | null): void {
    this.log.reset(session)
    this.builder.clear()
    this.session = session
    this.head = 0
    this.published = 0
    this.ready = false
    this.loaded = 0
    this.catchUpTo = 0
    this.pulse = emptyPulse
    this.busySince = null
    this.rate.clear()
    this.epoch++
    this.version++
  }

  /** The welcome says how far the catch-up goes; until then views are not re-rendered per frame. */
  expect(head: number): void {
    this.catchUpTo = head
    if (this.log.head >= head) this.schedule()
  }

  apply(events: ReadonlyArray<Envelope>): AppendResult {
    const result = this.log.append(events)
    if (this.log.head < this.catchUpTo) this.loaded = this.log.head
    else if (result.added > 0 || !this.ready) this.schedule()
    return result
  }

  // One publish per animation frame, whatever the number of frames received; a timer covers hidden tabs (no rAF).
  private schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    let timer = 0
    const run = () => {
      if (!this.scheduled) return
      this.scheduled = false
      window.clearTimeout(timer)
      this.publish()
    }
    requestAnimationFrame(run)
    timer = window.setTimeout(run, 100)
  }

  private publish(): void {
    const head = this.log.head
    if (head > this.published) {
      // A catch-up is one batch; a pulse lights the paths of what arrived since the last frame.
      this.pulse = pulseOf(this.pulse, this.ready ? this.log.events.slice(this.published) : [])
      if (this.ready) this.rate.add(performance.now(), head - this.published)
    }
    this.busySince = this.log.busySince
    this.published = head
    this.head = head
    this.loaded = head
    this.ready = true
    this.version++
  }
}
