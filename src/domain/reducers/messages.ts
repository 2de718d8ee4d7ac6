/**
 * Messages reducer: the conversation in order (user, assistant, tool-call slots) and the queue.
 * Mutates the state it is given in O(size of the event); reads no clock, makes no ids, does no I/O.
 */
import type { Envelope } from "../Event.ts"

export interface UserItem {
  readonly kind: "user"
  readonly messageId: string
  readonly text: string
  readonly by: string
  readonly seq: number
  readonly at: number
  /** True when it waited in the queue before it entered the conversation. */
  readonly wasQueued: boolean
}

export type AssistantStatus = "streaming" | "completed" | "interrupted" | "failed"

export interface AssistantItem {
  readonly kind: "assistant"
  readonly turnId: string
  readonly model: string
  readonly seq: number
  text: string
  status: AssistantStatus
  /** Why it stopped, for interrupted and failed turns. */
  note: string | null
  /** The turn this one runs again, if it is a retry. */
  readonly retryOf: string | null
  /** The turn that ran this one again (it left the model's memory), if any. */
  retriedBy: string | null
  /** Bumped on every change, so views keyed by item can see in-place updates. */
  rev: number
}

/** A slot in the conversation where a tool call's card sits; its details live in the commands reducer. */
export interface ToolCallItem {
  readonly kind: "tool_call"
  readonly callId: string
  readonly turnId: string
}

/** The runtime stopped the model/tool loop by itself (LoopStopped). */
export interface LoopStoppedItem {
  readonly kind: "loop_stopped"
  readonly reason: "turn_limit" | "invalid_calls"
  readonly turns: number | null
  readonly seq: number
}

/**
 * Where the model's memory was compacted (CompactionStarted, then MemoryCompacted or MemoryTrimmed): the conversation
 * keeps every message; this marker says the ones before it were summarised (or omitted) for the model.
 */
export interface CompactionItem {
  readonly kind: "compaction"
  readonly seq: number
  readonly upToSeq: number
  status: "running" | "compacted" | "trimmed"
  /** The model's summary (compacted), or the note the model sees instead (trimmed). */
  summary: string | null
  omitted: number | null
  readonly tokensBefore: number
  tokensAfter: number | null
  /** Why no summary was made (trimmed). */
  reason: string | null
  rev: number
}

export type ConversationItem = UserItem | AssistantItem | ToolCallItem | LoopStoppedItem | CompactionItem

export interface QueuedMessage {
  readonly messageId: string
  readonly text: string
  readonly by: string
  readonly seq: number
}

export interface MessagesState {
  readonly items: Array<ConversationItem>
  /** Waiting messages, in arrival order. */
  queue: Array<QueuedMessage>
  /** Index into `items` of each turn's assistant item. */
  readonly turnIndex: Map<string, number>
}

export const initialMessages = (): MessagesState => ({ items: [], queue: [], turnIndex: new Map() })

/** The newest compaction marker, when it is for `upToSeq`. */
const compaction = (state: MessagesState, upToSeq: number): CompactionItem | undefined => {
  for (let i = state.items.length - 1; i >= 0; i--) {
    const item = state.items[i]!
    if (item.kind === "compaction") return item.upToSeq === upToSeq ? item : undefined
  }
  return undefined
}

const assistant = (state: MessagesState, turnId: string): AssistantItem | undefined => {
  const i = state.turnIndex.get(turnId)
  const item = i === undefined ? undefined : state.items[i]
  return item?.kind === "assistant" ? item : undefined
}

export const evolveMessages = (state: MessagesState, e: Envelope): void => {
  switch (e.type) {
    case "UserMessageAdded":
      state.items.push({ kind: "user", messageId: e.messageId, text: e.text, by: e.by, seq: e.seq, at: e.at, wasQueued: false })
      return
    case "UserMessageQueued":
      state.queue.push({ messageId: e.messageId, text: e.text, by: e.by, seq: e.seq })
      return
    case "QueuedMessagesFlushed": {
      const ids = new Set(e.messageIds)
      const byId = new Map(state.queue.map((q) => [q.messageId, q]))
      for (const id of e.messageIds) {
        const q = byId.get(id)
        if (q) {
          state.items.push({ kind: "user", messageId: q.messageId, text: q.text, by: q.by, seq: e.seq, at: e.at, wasQueued: true })
        }
      }
      state.queue = state.queue.filter((q) => !ids.has(q.messageId))
      return
    }
    case "QueuedMessageCancelled":
      state.queue = state.queue.filter((q) => q.messageId !== e.messageId)
      return
    case "TurnStarted": {
      if (e.retryOf !== undefined) {
        const old = assistant(state, e.retryOf)
        if (old) {
          old.retriedBy = e.turnId
          old.rev++
        }
      }
      state.turnIndex.set(e.turnId, state.items.length)
      state.items.push({
        kind: "assistant",
        turnId: e.turnId,
        model: e.model,
        seq: e.seq,
        text: "",
        status: "streaming",
        note: null,
        retryOf: e.retryOf ?? null,
        retriedBy: null,
        rev: 0
      })
      return
    }
    case "LoopStopped":
      state.items.push({ kind: "loop_stopped", reason: e.reason, turns: e.turns ?? null, seq: e.seq })
      return
    case "CompactionStarted":
      state.items.push({
        kind: "compaction",
        seq: e.seq,
        upToSeq: e.upToSeq,
        status: "running",
        summary: null,
        omitted: null,
        tokensBefore: e.tokensBefore,
        tokensAfter: null,
        reason: null,
        rev: 0
      })
      return
    case "MemoryCompacted":
    case "MemoryTrimmed": {
      const c = compaction(state, e.upToSeq)
      if (c) {
        c.status = e.type === "MemoryCompacted" ? "compacted" : "trimmed"
        c.summary = e.type === "MemoryCompacted" ? e.summary : `[${e.omitted} earlier messages omitted]`
        c.omitted = e.type === "MemoryTrimmed" ? e.omitted : null
        c.tokensAfter = e.tokensAfter
        c.reason = e.type === "MemoryTrimmed" ? (e.reason ?? null) : null
        c.rev++
      }
      return
    }
    case "AssistantDelta": {
      const a = assistant(state, e.turnId)
      if (a) {
        a.text += e.text
        a.rev++
      }
      return
    }
    case "ToolCallRequested":
    case "ToolCallInvalid":
      state.items.push({ kind: "tool_call", callId: e.callId, turnId: e.turnId })
      return
    case "TurnCompleted":
    case "TurnInterrupted":
    case "TurnFailed": {
      const a = assistant(state, e.turnId)
      if (a) {
        a.status = e.type === "TurnCompleted" ? "completed" : e.type === "TurnInterrupted" ? "interrupted" : "failed"
        a.note = e.type === "TurnInterrupted" ? e.reason : e.type === "TurnFailed" ? e.error : null
        a.rev++
      }
      return
    }
    case "SessionCreated":
    case "ToolCallApproved":
    case "ToolCallRejected":
    case "ToolExecutionStarted":
    case "ToolExecutionSucceeded":
    case "ToolExecutionFailed":
    case "ToolExecutionCancelled":
    case "InterruptRequested":
    case "ToolCallReopened":
    case "SessionRenamed":
    case "ModelChosen":
      return
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}
