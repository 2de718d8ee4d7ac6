/**
 * LLM memory projection, kept up to date event by event (O(size of the event)): exactly what the model sees.
 * No queued messages; every tool call paired with a result text; interrupted text and edited args carry a note.
 */
import type { Envelope, JsonObject } from "../Event.ts"
import type { CallState } from "../reducers/commands.ts"
import type { LlmMemory, MemoryMessage, MemoryToolCall } from "./memoryTypes.ts"

export type { LlmMemory, MemoryMessage, MemoryToolCall } from "./memoryTypes.ts"

interface MutableCall {
  readonly callId: string
  readonly tool: string
  args: JsonObject
  result: string
}
interface MutableAssistant {
  readonly role: "assistant"
  readonly turnId: string
  text: string
  readonly toolCalls: Array<MutableCall>
}

export interface MemoryState {
  readonly messages: Array<MemoryMessage>
  readonly turns: Map<string, MutableAssistant>
  readonly calls: Map<string, MutableCall>
  /** Queued texts by message id, held back until they are flushed. */
  readonly held: Map<string, string>
}

export const initialMemory = (): MemoryState => ({ messages: [], turns: new Map(), calls: new Map(), held: new Map() })

/** What is known of a call stopped while it ran: eval's sandbox cannot touch anything outside it; others may have. */
const stoppedWhileRunning = (tool: string): string =>
  tool === "eval"
    ? "it was stopped inside its sandbox, which cannot change anything outside it, so nothing came of it"
    : "it was stopped while running, so it may have done part of its work"

/** What the model is told of a call, from its state in the commands reducer. */
export const resultText = (call: CallState): string => {
  const edited = call.edited ? `[The user edited the arguments before approving; it ran with ${JSON.stringify(call.args)}]\n` : ""
  switch (call.status) {
    case "pending":
      return "[Not run: awaiting the user's approval]"
    case "approved":
      return `${edited}[Approved, not started yet]`
    case "running":
      return `${edited}[Running, no result yet]`
    case "succeeded":
      return `${edited}${call.output ?? ""}${call.truncated ? "\n[output truncated]" : ""}`
    case "failed":
      return `${edited}Error: ${call.error ?? "unknown error"}`
    case "rejected":
      return `[Rejected${call.decidedBy?.startsWith("user:") ? " by the user" : ""}: ${call.reason ?? "no reason given"}]`
    case "cancelled":
      return `[Cancelled (${call.reason ?? "no reason"}): ${call.outcome === "not_run" ? "it did not run" : stoppedWhileRunning(call.tool)}]`
    case "invalid":
      return `[Invalid tool call, not run: ${call.error ?? "unknown error"}]`
    default: {
      const _exhaustive: never = call.status
      return _exhaustive
    }
  }
}

/** The newest assistant message of the memory, if the memory ends with one. */
const lastAssistant = (state: MemoryState): MutableAssistant | undefined => {
  const m = state.messages[state.messages.length - 1]
  return m !== undefined && m.role === "assistant" ? state.turns.get(m.turnId) : undefined
}

/** Takes a turn's reply and its calls out of the memory (a retry replaces it; `decide` allows only the last reply). */
const dropTurn = (state: MemoryState, turnId: string): void => {
  const m = state.turns.get(turnId)
  if (m === undefined) return
  const i = state.messages.lastIndexOf(m)
  if (i >= 0) state.messages.splice(i, 1)
  state.turns.delete(turnId)
  for (const c of m.toolCalls) state.calls.delete(c.callId)
}

/** Called after the commands reducer has folded `e`, so `call` reflects it. */
export const evolveMemory = (state: MemoryState, e: Envelope, call: CallState | undefined): void => {
  switch (e.type) {
    case "UserMessageAdded":
      state.messages.push({ role: "user", text: e.text })
      return
    case "UserMessageQueued":
      state.held.set(e.messageId, e.text)
      return
    case "QueuedMessageCancelled":
      state.held.delete(e.messageId)
      return
    case "QueuedMessagesFlushed":
      for (const id of e.messageIds) {
        const text = state.held.get(id)
        if (text !== undefined) {
          state.messages.push({ role: "user", text })
          state.held.delete(id)
        }
      }
      return
    case "TurnStarted": {
      // A retry runs from the same memory: the turn it replaces (the last reply, rule of retry_turn) leaves it.
      if (e.retryOf !== undefined) dropTurn(state, e.retryOf)
      const m: MutableAssistant = { role: "assistant", turnId: e.turnId, text: "", toolCalls: [] }
      state.turns.set(e.turnId, m)
      state.messages.push(m)
      return
    }
    case "AssistantDelta": {
      const m = state.turns.get(e.turnId)
      if (m) m.text += e.text
      return
    }
    case "TurnInterrupted": {
      const m = state.turns.get(e.turnId)
      if (m) m.text += `\n[This reply was interrupted (${e.reason}); the text above is partial.]`
      return
    }
    case "TurnFailed": {
      const m = state.turns.get(e.turnId)
      if (m) m.text += `\n[This reply failed: ${e.error}]`
      return
    }
    case "LoopStopped": {
      const m = lastAssistant(state)
      if (m) m.text += `\n[The runtime stopped the tool loop here: ${e.reason === "turn_limit" ? `${e.turns ?? "too many"} model turns since the user's last message` : "several replies in a row made only invalid tool calls"}. Wait for the user.]`
      return
    }
    case "ToolCallRequested":
    case "ToolCallInvalid": {
      const m = state.turns.get(e.turnId)
      if (m && call) {
        const c: MutableCall = { callId: e.callId, tool: e.tool, args: call.args, result: resultText(call) }
        m.toolCalls.push(c)
        state.calls.set(e.callId, c)
      }
      return
    }
    case "ToolCallApproved":
    case "ToolCallReopened":
    case "ToolCallRejected":
    case "ToolExecutionStarted":
    case "ToolExecutionSucceeded":
    case "ToolExecutionFailed":
    case "ToolExecutionCancelled": {
      const c = state.calls.get(e.callId)
      if (c && call) {
        c.args = call.args
        c.result = resultText(call)
      }
      return
    }
    case "SessionCreated":
    case "TurnCompleted":
    case "InterruptRequested":
    case "SessionRenamed":
    case "ModelChosen":
      return
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}

/** A deep, plain copy (for printing, comparing, or handing to a runner that outlives the next event). */
export const memorySnapshot = (state: { readonly memory: MemoryState }): LlmMemory =>
  ({
    messages: state.memory.messages.map((m): MemoryMessage =>
      m.role === "user"
        ? { role: "user", text: m.text }
        : { role: "assistant", turnId: m.turnId, text: m.text, toolCalls: m.toolCalls.map((c): MemoryToolCall => ({ callId: c.callId, tool: c.tool, args: c.args, result: c.result })) }
    )
  })

/**
 * The prompt of a turn: the memory as it was when `turnId` started (everything before the turn's own message).
 * Events after TurnStarted that reach memory belong to that turn or later, so cutting there gives the prompt exactly.
 */
export const promptFor = (state: { readonly memory: MemoryState }, turnId: string): LlmMemory => {
  const all = memorySnapshot(state).messages
  const i = all.findIndex((m) => m.role === "assistant" && m.turnId === turnId)
  return { messages: i < 0 ? all : all.slice(0, i) }
}
