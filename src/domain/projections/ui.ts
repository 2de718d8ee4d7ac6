/**
 * UI view projection: what the visualizer draws — conversation, queue, tool-call cards, phase, allowed actions.
 * O(pending approvals) per call: it references the reducers' structures instead of copying history.
 */
import type { CallState } from "../reducers/commands.ts"
import type { ConversationItem, QueuedMessage } from "../reducers/messages.ts"
import { isBusy, type SessionState } from "../state.ts"

export type Phase = "idle" | "streaming" | "awaiting_approval" | "executing" | "interrupting"

export interface AllowedActions {
  /** Always true: a message while busy is queued (or interrupts, by choice). */
  readonly canSend: boolean
  readonly canApprove: boolean
  readonly canReject: boolean
  readonly canInterrupt: boolean
}

export interface UiView {
  readonly session: string
  readonly title: string
  readonly head: number
  /** The conversation in order; a `tool_call` item's card is `calls.get(item.callId)`. */
  readonly items: ReadonlyArray<ConversationItem>
  readonly calls: ReadonlyMap<string, CallState>
  readonly queue: ReadonlyArray<QueuedMessage>
  readonly phase: Phase
  /** Calls waiting for a user's decision, in request order. */
  readonly pendingApprovals: ReadonlyArray<CallState>
  readonly actions: AllowedActions
}

/** A compaction counts as streaming: the model is at work before the turn (recovery closes both). */
export const phaseOf = (s: SessionState): Phase =>
  s.interrupts.streaming !== null || s.interrupts.compacting !== null
    ? "streaming"
    : s.commands.active.size > 0
      ? "executing"
      : s.commands.pending.size > 0
        ? "awaiting_approval"
        : "idle"

export const uiView = (s: SessionState): UiView => {
  const pendingApprovals: Array<CallState> = []
  for (const id of s.commands.pending) {
    const c = s.commands.calls.get(id)
    if (c) pendingApprovals.push(c)
  }
  const canDecide = pendingApprovals.length > 0
  return {
    session: s.session,
    title: s.counters.title ?? "New session",
    head: s.head,
    items: s.messages.items,
    calls: s.commands.calls,
    queue: s.messages.queue,
    phase: phaseOf(s),
    pendingApprovals,
    actions: { canSend: s.head > 0, canApprove: canDecide, canReject: canDecide, canInterrupt: isBusy(s) }
  }
}
