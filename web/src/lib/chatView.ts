/**
 * Plain, immutable snapshots of the UI projection for rendering. The reducers update items in place (with a `rev`),
 * so each item is copied only when its rev changed: unchanged items keep their identity and are not re-rendered.
 */
import type { CallState } from "../../../src/domain/reducers/commands.ts"
import type { AssistantItem, CompactionItem, LoopStoppedItem, QueuedMessage, UserItem } from "../../../src/domain/reducers/messages.ts"
import { isBusy, type SessionState } from "../../../src/domain/state.ts"
import { type AllowedActions, type Phase, uiView } from "../../../src/domain/projections/ui.ts"

export type CallSnapshot = Readonly<CallState>

export type ChatEntry =
  | (Readonly<UserItem> & { readonly key: string })
  | (Readonly<AssistantItem> & { readonly key: string })
  | { readonly kind: "tool_call"; readonly key: string; readonly call: CallSnapshot }
  | (Readonly<LoopStoppedItem> & { readonly key: string })
  | (Readonly<CompactionItem> & { readonly key: string })

export interface ChatView {
  readonly session: string
  readonly title: string
  readonly head: number
  readonly entries: ReadonlyArray<ChatEntry>
  readonly queue: ReadonlyArray<QueuedMessage>
  readonly phase: Phase
  readonly pendingApprovals: ReadonlyArray<CallSnapshot>
  readonly actions: AllowedActions
  /** The turn `retry_turn` may run again now (the last reply, when nothing runs and no message followed it), or null. */
  readonly retryTurn: string | null
  /** Turns that were run again: their replies and tool calls left the model's memory (the chat keeps them). */
  readonly retried: ReadonlySet<string>
  /** Turns that asked for tool calls. */
  readonly turnsWithCalls: ReadonlySet<string>
  /** The model this session picked (ModelChosen), or null for the server's default. */
  readonly model: string | null
}

/** Builds ChatViews of one session, reusing entries whose rev did not change. Call `clear` when the session changes. */
export class ChatBuilder {
  private readonly entries = new Map<string, { rev: number; entry: ChatEntry }>()
  private readonly calls = new Map<string, CallSnapshot>()

  clear(): void {
    this.entries.clear()
    this.calls.clear()
  }

  private call(c: CallState): CallSnapshot {
    const hit = this.calls.get(c.callId)
    if (hit && hit.rev === c.rev) return hit
    const snap: CallSnapshot = { ...c }
    this.calls.set(c.callId, snap)
    return snap
  }

  /** The entry under `key`, made again only when its item's rev changed (so unchanged items keep their identity). */
  private entry(key: string, rev: number, make: (key: string) => ChatEntry): ChatEntry {
    const hit = this.entries.get(key)
    if (hit && hit.rev === rev) return hit.entry
    const entry = make(key)
    this.entries.set(key, { rev, entry })
    return entry
  }

  build(state: SessionState): ChatView {
    const ui = uiView(state)
    const entries: Array<ChatEntry> = []
    const retried = new Set<string>()
    const turnsWithCalls = new Set<string>()
    for (const item of ui.items) {
      switch (item.kind) {
        case "user":
          entries.push(this.entry(`u:${item.messageId}`, 0, (key) => ({ ...item, key })))
          break
        case "assistant":
          if (item.retriedBy !== null) retried.add(item.turnId)
          entries.push(this.entry(`a:${item.turnId}`, item.rev, (key) => ({ ...item, key })))
          break
        case "tool_call": {
          turnsWithCalls.add(item.turnId)
          const c = ui.calls.get(item.callId)
          if (c) entries.push(this.entry(`c:${item.callId}`, c.rev, (key) => ({ kind: "tool_call", key, call: this.call(c) })))
          break
        }
        case "loop_stopped":
          entries.push(this.entry(`l:${item.seq}`, 0, (key) => ({ ...item, key })))
          break
        case "compaction":
          entries.push(this.entry(`m:${item.seq}`, item.rev, (key) => ({ ...item, key })))
          break
        default: {
          const _exhaustive: never = item
          return _exhaustive
        }
      }
    }
    return {
      session: ui.session,
      title: ui.title,
      head: ui.head,
      entries,
      queue: [...ui.queue],
      phase: ui.phase,
      pendingApprovals: ui.pendingApprovals.map((c) => this.call(c)),
      actions: ui.actions,
      retryTurn: retryable(state),
      retried,
      turnsWithCalls,
      model: state.counters.model
    }
  }
}

/** The rule of `retry_turn` (DESIGN.md §2, rule 8) as the chat offers it: the last reply, when idle, with no message after it. */
const retryable = (state: SessionState): string | null => {
  const last = state.interrupts.lastTurn
  if (last === null || last.end === "streaming" || isBusy(state)) return null
  const items = state.messages.items
  return items[items.length - 1]?.kind === "user" ? null : last.turnId
}
