/**
 * Time travel: the session state at any seq, folded from the tape with the shared reducers (never a server snapshot),
 * and the change one event made to each projection. Keeps a private state that moves forward event by event and
 * checkpoints (structured clones) so moving backward refolds at most CHECKPOINT_EVERY events.
 */
import type { Envelope } from "../../../src/domain/Event.ts"
import { type LlmMemory, memorySnapshot, memoryTokens } from "../../../src/domain/projections/memory.ts"
import { summaryView } from "../../../src/domain/projections/summary.ts"
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"
import { uiView } from "../../../src/domain/projections/ui.ts"
import { evolve, initialState, type SessionState } from "../../../src/domain/state.ts"

export const CHECKPOINT_EVERY = 5_000

export class Rewinder {
  private state: SessionState
  private readonly checkpoints = new Map<number, SessionState>()

  constructor(readonly session: string) {
    this.state = initialState(session)
  }

  /** The state after folding `events` up to `seq` (inclusive). The result is owned by the rewinder: read it, don't keep it. */
  stateAt(events: ReadonlyArray<Envelope>, seq: number): SessionState {
    const target = Math.max(0, Math.min(seq, events.length))
    if (target < this.state.head) {
      const base = Math.floor(target / CHECKPOINT_EVERY) * CHECKPOINT_EVERY
      const cp = base > 0 ? this.checkpoints.get(base) : undefined
      this.state = cp ? structuredClone(cp) : initialState(this.session)
    }
    for (let i = this.state.head; i < target; i++) {
      const e = events[i]
      if (!e) break
      evolve(this.state, e)
      if (e.seq % CHECKPOINT_EVERY === 0 && !this.checkpoints.has(e.seq)) this.checkpoints.set(e.seq, structuredClone(this.state))
    }
    return this.state
  }
}

/** Plain copies of the three projections, for showing and diffing. */
export interface Projections {
  readonly ui: unknown
  readonly memory: LlmMemory
  /** The memory's size in tokens at this event (the provider's count of the last prompt plus the estimate since). */
  readonly memoryTokens: number
  readonly summary: SessionSummary
}

export const projectionsOf = (s: SessionState): Projections => {
  const ui = uiView(s)
  return {
    ui: {
      title: ui.title,
      head: ui.head,
      phase: ui.phase,
      actions: { ...ui.actions },
      items: ui.items.map((i) => ({ ...i })),
      queue: ui.queue.map((q) => ({ ...q })),
      calls: Object.fromEntries([...ui.calls].map(([id, c]) => [id, { ...c }])),
      pendingApprovals: ui.pendingApprovals.map((c) => c.callId)
    },
    memory: memorySnapshot(s),
    memoryTokens: memoryTokens(s.memory),
    summary: summaryView(s)
  }
}

export interface Change {
  /** Dotted path, e.g. `memory.messages.3.text`. */
  readonly path: string
  readonly kind: "added" | "removed" | "changed" | "appended"
  readonly before?: unknown
  readonly after?: unknown
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** Structural diff of two JSON-like values, at most `limit` changes. Text that only grew is reported as `appended`. */
export const diff = (before: unknown, after: unknown, path = "", out: Array<Change> = [], limit = 200): Array<Change> => {
  if (out.length >= limit || Object.is(before, after)) return out
  if (Array.isArray(before) && Array.isArray(after)) {
    const n = Math.max(before.length, after.length)
    for (let i = 0; i < n && out.length < limit; i++) {
      const p = path === "" ? String(i) : `${path}.${i}`
      if (i >= before.length) out.push({ path: p, kind: "added", after: after[i] })
      else if (i >= after.length) out.push({ path: p, kind: "removed", before: before[i] })
      else diff(before[i], after[i], p, out, limit)
    }
    return out
  }
  if (isRecord(before) && isRecord(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)])
    for (const k of keys) {
      if (out.length >= limit) break
      const p = path === "" ? k : `${path}.${k}`
      if (!(k in before)) out.push({ path: p, kind: "added", after: after[k] })
      else if (!(k in after)) out.push({ path: p, kind: "removed", before: before[k] })
      else diff(before[k], after[k], p, out, limit)
    }
    return out
  }
  if (typeof before === "string" && typeof after === "string" && after.startsWith(before)) {
    out.push({ path, kind: "appended", before, after: after.slice(before.length) })
    return out
  }
  out.push({ path, kind: "changed", before, after })
  return out
}

export interface Inspection {
  readonly event: Envelope
  readonly at: Projections
  /** What this event changed in the UI view, the LLM memory and the summary. */
  readonly changes: ReadonlyArray<Change>
}

/** The projections at `seq` and the diff the event at `seq` made, from one rewinder. */
export const inspect = (r: Rewinder, events: ReadonlyArray<Envelope>, seq: number): Inspection | null => {
  const event = events[seq - 1]
  if (!event) return null
  const before = projectionsOf(r.stateAt(events, seq - 1))
  const at = projectionsOf(r.stateAt(events, seq))
  return { event, at, changes: diff(before, at) }
}
