/**
 * Interrupts reducer: what is running now (the streaming turn) and how the last turn ended,
 * which is what an interrupt would stop and whether the loop may go on. O(1) per event, pure of I/O.
 */
import type { Envelope } from "../Event.ts"

export type TurnEnd = "streaming" | "completed" | "interrupted" | "failed"

export interface InterruptsState {
  /** The turn streaming now, if any. */
  streaming: string | null
  /** The latest turn, how it ended, and whether an interrupt or a cancellation ended its loop (rule 3). */
  lastTurn: { readonly turnId: string; end: TurnEnd; loopEnded: boolean } | null
  /** Model turns started since a user message last entered the conversation (the loop's length, rule 3). */
  turnsSinceUser: number
  /** Consecutive completed turns whose tool calls were all invalid (kept by `evolve`, which sees the calls). */
  invalidStreak: number
  /** The compaction running now (CompactionStarted not yet ended by MemoryCompacted / MemoryTrimmed), if any. */
  compacting: { readonly upToSeq: number; readonly seq: number; readonly tokensBefore: number } | null
  /** Compactions started so far: the scripted model's summary entry of the next one. */
  compactions: number
  /** How many interrupts were requested, and the last one. */
  count: number
  last: { readonly seq: number; readonly by: string; readonly reason: string } | null
}

export const initialInterrupts = (): InterruptsState => ({
  streaming: null,
  lastTurn: null,
  turnsSinceUser: 0,
  invalidStreak: 0,
  compacting: null,
  compactions: 0,
  count: 0,
  last: null
})

export const evolveInterrupts = (state: InterruptsState, e: Envelope): void => {
  switch (e.type) {
    case "TurnStarted":
      state.streaming = e.turnId
      state.lastTurn = { turnId: e.turnId, end: "streaming", loopEnded: false }
      state.turnsSinceUser++
      return
    case "UserMessageAdded":
    case "QueuedMessagesFlushed":
      state.turnsSinceUser = 0
      state.invalidStreak = 0
      return
    case "TurnCompleted":
    case "TurnInterrupted":
    case "TurnFailed":
      if (state.streaming === e.turnId) state.streaming = null
      if (state.lastTurn?.turnId === e.turnId) {
        state.lastTurn.end = e.type === "TurnCompleted" ? "completed" : e.type === "TurnInterrupted" ? "interrupted" : "failed"
      }
      return
    case "InterruptRequested":
      state.count++
      state.last = { seq: e.seq, by: e.by, reason: e.reason }
      if (state.lastTurn) state.lastTurn.loopEnded = true
      return
    case "CompactionStarted":
      state.compacting = { upToSeq: e.upToSeq, seq: e.seq, tokensBefore: e.tokensBefore }
      state.compactions++
      return
    case "MemoryCompacted":
    case "MemoryTrimmed":
      if (state.compacting?.upToSeq === e.upToSeq) state.compacting = null
      return
    case "ToolExecutionCancelled":
    case "LoopStopped":
      if (state.lastTurn) state.lastTurn.loopEnded = true
      return
    case "SessionCreated":
    case "UserMessageQueued":
    case "QueuedMessageCancelled":
    case "ToolCallReopened":
    case "SessionRenamed":
    case "ModelChosen":
    case "AssistantDelta":
    case "ToolCallRequested":
    case "ToolCallInvalid":
    case "ToolCallApproved":
    case "ToolCallRejected":
    case "ToolExecutionStarted":
    case "ToolExecutionSucceeded":
    case "ToolExecutionFailed":
      return
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}
