/**
 * Plain, immutable snapshots of the UI projection for rendering. The reducers update items in place (with a `rev`),
 * so each item is copied only when its rev changed: unchanged items keep their identity and are not re-rendered.
 */
import type { CallState } from "../../../src/domain/reducers/commands.ts"
import type { AssistantItem, QueuedMessage, UserItem } from "../../../src/domain/reducers/messages.ts"
import type { SessionState } from "../../../src/domain/state.ts"
import { type AllowedActions, type Phase, uiView } from "../../../src/domain/projections/ui.ts"

export type CallSnapshot = Readonly<CallState>

export type ChatEntry =
  | (Readonly<UserItem> & { readonly key: string })
  | (Readonly<AssistantItem> & { readonly key: string })
  | { readonly kind: "tool_call"; readonly key: string; readonly call: CallSnapshot }

export interface ChatView {
  readonly session: string
  readonly title: string
  readonly head: number
  readonly entries: ReadonlyArray<ChatEntry>
  readonly queue: ReadonlyArray<QueuedMessage>
  readonly phase: Phase
  readonly pendingApprovals: ReadonlyArray<CallSnapshot>
  readonly actions: AllowedActions
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

  build(state: SessionState): ChatView {
    const ui = uiView(state)
    const entries: Array<ChatEntry> = []
    for (const item of ui.items) {
      switch (item.kind) {
        case "user": {
          const key = `u:${item.messageId}`
          const hit = this.entries.get(key)
          if (hit) entries.push(hit.entry)
          else {
            const entry: ChatEntry = { ...item, key }
            this.entries.set(key, { rev: 0, entry })
            entries.push(entry)
          }
          break
        }
        case "assistant": {
          const key = `a:${item.turnId}`
          const hit = this.entries.get(key)
          if (hit && hit.rev === item.rev) entries.push(hit.entry)
          else {
            const entry: ChatEntry = { ...item, key }
            this.entries.set(key, { rev: item.rev, entry })
            entries.push(entry)
          }
          break
        }
        case "tool_call": {
          const c = ui.calls.get(item.callId)
          if (!c) break
          const key = `c:${item.callId}`
          const call = this.call(c)
          const hit = this.entries.get(key)
          if (hit && hit.entry.kind === "tool_call" && hit.entry.call === call) entries.push(hit.entry)
          else {
            const entry: ChatEntry = { kind: "tool_call", key, call }
            this.entries.set(key, { rev: c.rev, entry })
            entries.push(entry)
          }
          break
        }
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
      actions: ui.actions
    }
  }
}
