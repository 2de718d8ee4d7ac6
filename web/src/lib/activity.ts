/**
 * What the session is doing now, from its folded state: which runner is busy with what, what waits for a person,
 * and how fast events arrive. Pure; the rate meter is fed by the tape module as batches are published.
 */
import type { SessionState } from "../../../src/domain/state.ts"

export interface Activity {
  /** The turn streaming now, and how much text it has so far. */
  readonly model: { readonly turnId: string; readonly chars: number } | null
  /** Calls approved and waiting for a runner, or running, in approval order. */
  readonly tools: ReadonlyArray<{ readonly callId: string; readonly tool: string; readonly running: boolean }>
  /** Calls waiting for a decision, in request order. */
  readonly pending: ReadonlyArray<{ readonly callId: string; readonly tool: string }>
  readonly queued: number
}

export const activityOf = (s: SessionState): Activity => {
  const streaming = s.interrupts.streaming
  let model: Activity["model"] = null
  if (streaming !== null) {
    const i = s.messages.turnIndex.get(streaming)
    const item = i === undefined ? undefined : s.messages.items[i]
    model = { turnId: streaming, chars: item?.kind === "assistant" ? item.text.length : 0 }
  }
  const tools: Array<Activity["tools"][number]> = []
  for (const id of s.commands.active) {
    const c = s.commands.calls.get(id)
    if (c) tools.push({ callId: id, tool: c.tool, running: c.status === "running" })
  }
  const pending: Array<Activity["pending"][number]> = []
  for (const id of s.commands.pending) {
    const c = s.commands.calls.get(id)
    if (c) pending.push({ callId: id, tool: c.tool })
  }
  return { model, tools, pending, queued: s.messages.queue.length }
}

/** Events per second over a sliding window of arrival times (a catch-up is not counted: it is history, not activity). */
export class RateMeter {
  private readonly samples: Array<{ readonly t: number; readonly n: number }> = []

  constructor(private readonly windowMs = 5_000) {}

  add(t: number, n: number): void {
    if (n <= 0) return
    this.samples.push({ t, n })
    this.trim(t)
  }

  perSecond(now: number): number {
    this.trim(now)
    let n = 0
    for (const s of this.samples) n += s.n
    return n / (this.windowMs / 1000)
  }

  clear(): void {
    this.samples.length = 0
  }

  private trim(now: number): void {
    while (this.samples.length > 0 && (this.samples[0]?.t ?? now) <= now - this.windowMs) this.samples.shift()
  }
}
