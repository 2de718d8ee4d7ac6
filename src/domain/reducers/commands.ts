/**
 * Commands reducer: every tool call's life, requested → approved/rejected → started → succeeded/failed/cancelled.
 * Mutates the state it is given in O(size of the event); no clock, no ids, no I/O.
 */
import type { Envelope, JsonObject } from "../Event.ts"

export type CallStatus = "pending" | "approved" | "running" | "succeeded" | "failed" | "rejected" | "cancelled" | "invalid"

export interface CallState {
  readonly callId: string
  readonly turnId: string
  readonly tool: string
  /** The args the model asked for. */
  readonly requestedArgs: JsonObject
  /** What the model sent for an invalid call (it may not even be an object); null for a valid one. */
  readonly rawArgs: unknown
  /** The args it runs (or ran) with: the user's edit when there was one. */
  args: JsonObject
  edited: boolean
  readonly description: string | null
  status: CallStatus
  /** Who approved or rejected it (`user:…`, `policy:…`). */
  decidedBy: string | null
  output: string | null
  truncated: boolean
  /** Error text of an invalid request or a failed execution. */
  error: string | null
  /** Reason of a rejection or cancellation. */
  reason: string | null
  outcome: "not_run" | "unknown" | null
  readonly requestedSeq: number
  rev: number
}

export const isTerminal = (s: CallStatus): boolean =>
  s === "succeeded" || s === "failed" || s === "rejected" || s === "cancelled" || s === "invalid"

export interface CommandsState {
  readonly calls: Map<string, CallState>
  /** Awaiting approval, in request order. */
  readonly pending: Set<string>
  /** Approved or running (not yet finished), in approval order. */
  readonly active: Set<string>
  /** Call ids of each turn, in request order. */
  readonly byTurn: Map<string, Array<string>>
}

export const initialCommands = (): CommandsState => ({ calls: new Map(), pending: new Set(), active: new Set(), byTurn: new Map() })

const settle = (state: CommandsState, call: CallState, status: CallStatus): void => {
  call.status = status
  call.rev++
  state.pending.delete(call.callId)
  if (status === "approved" || status === "running") state.active.add(call.callId)
  else state.active.delete(call.callId)
}

export const evolveCommands = (state: CommandsState, e: Envelope): void => {
  switch (e.type) {
    case "ToolCallRequested":
    case "ToolCallInvalid": {
      const valid = e.type === "ToolCallRequested"
      const args = valid ? e.args : {}
      state.calls.set(e.callId, {
        callId: e.callId,
        turnId: e.turnId,
        tool: e.tool,
        requestedArgs: args,
        rawArgs: valid ? null : (e.args ?? null),
        args,
        edited: false,
        description: valid ? (e.description ?? null) : null,
        status: valid ? "pending" : "invalid",
        decidedBy: null,
        output: null,
        truncated: false,
        error: valid ? null : e.error,
        reason: null,
        outcome: null,
        requestedSeq: e.seq,
        rev: 0
      })
      if (valid) state.pending.add(e.callId)
      const list = state.byTurn.get(e.turnId)
      if (list) list.push(e.callId)
      else state.byTurn.set(e.turnId, [e.callId])
      return
    }
    case "ToolCallApproved": {
      const call = state.calls.get(e.callId)
      if (!call) return
      if (e.args) {
        call.args = e.args
        call.edited = true
      }
      call.decidedBy = e.by
      settle(state, call, "approved")
      return
    }
    case "ToolCallRejected": {
      const call = state.calls.get(e.callId)
      if (!call) return
      call.decidedBy = e.by
      call.reason = e.reason
      settle(state, call, "rejected")
      return
    }
    case "ToolCallReopened": {
      const call = state.calls.get(e.callId)
      if (!call) return
      call.decidedBy = null
      call.reason = e.reason
      call.status = "pending"
      call.rev++
      state.active.delete(call.callId)
      state.pending.add(call.callId)
      return
    }
    case "ToolExecutionStarted": {
      const call = state.calls.get(e.callId)
      if (call) settle(state, call, "running")
      return
    }
    case "ToolExecutionSucceeded": {
      const call = state.calls.get(e.callId)
      if (!call) return
      call.output = e.output
      call.truncated = e.truncated ?? false
      settle(state, call, "succeeded")
      return
    }
    case "ToolExecutionFailed": {
      const call = state.calls.get(e.callId)
      if (!call) return
      call.error = e.error
      settle(state, call, "failed")
      return
    }
    case "ToolExecutionCancelled": {
      const call = state.calls.get(e.callId)
      if (!call) return
      call.reason = e.reason
      call.outcome = e.outcome
      settle(state, call, "cancelled")
      return
    }
    case "SessionCreated":
    case "UserMessageAdded":
    case "UserMessageQueued":
    case "QueuedMessagesFlushed":
    case "QueuedMessageCancelled":
    case "TurnStarted":
    case "AssistantDelta":
    case "TurnCompleted":
    case "TurnInterrupted":
    case "TurnFailed":
    case "InterruptRequested":
    case "LoopStopped":
    case "CompactionStarted":
    case "MemoryCompacted":
    case "MemoryTrimmed":
    case "SessionRenamed":
    case "ModelChosen":
      return
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}
