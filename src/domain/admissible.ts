/**
 * The strict fold: whether an event could have been appended by the live writer after the events before it. A tape
 * from outside (import, fork) is checked event by event with it, so no tape can hold what no live session could
 * produce (a result with no approval, two turns open, a forged actor). Pure; folds with the real `evolve`.
 */
import { MAX_MESSAGE_CHARS, MAX_TITLE_CHARS } from "./Command.ts"
import { callIdAt, type DecideContext, messageIdAt, turnIdAt } from "./decide.ts"
import type { Envelope } from "./Event.ts"
import { coveredBy } from "./projections/memory.ts"
import { evolve, initialState, isBusy, type SessionState } from "./state.ts"

/** Caps on the texts a tape may hold (the live writer never produces longer ones). */
export const TAPE_CAPS = {
  /** A user message, queued or not. */
  messageChars: MAX_MESSAGE_CHARS,
  /** A session title. */
  titleChars: MAX_TITLE_CHARS,
  /** One streamed delta, a tool output, an error, a reason. */
  textChars: 1024 * 1024,
  /** A tool call's args as JSON. */
  argsChars: 256 * 1024
} as const

const kind = (by: string): string => {
  const i = by.indexOf(":")
  return i < 0 ? by : by.slice(0, i)
}

/** Who may have caused each event (DESIGN.md §2, as `decide` assigns `by`). */
const actorOk = (e: Envelope): boolean => {
  const k = kind(e.by)
  switch (e.type) {
    case "SessionCreated":
      return k === "system" || k === "user"
    case "UserMessageAdded":
    case "UserMessageQueued":
    case "QueuedMessageCancelled":
    case "InterruptRequested":
    case "ToolCallRejected":
    case "ModelChosen":
      return k === "user"
    case "SessionRenamed":
      // A user's rename, or the title a copy (fork, import) gives itself over a copied rename.
      return k === "user" || k === "system"
    case "QueuedMessagesFlushed":
    case "TurnStarted":
    case "ToolCallReopened":
    case "LoopStopped":
    case "CompactionStarted":
      return k === "system"
    case "MemoryCompacted":
      return k === "model"
    case "MemoryTrimmed":
      // The writer's fallback when no summary came (system), or an interrupt's effect (user).
      return k === "system" || k === "user"
    case "AssistantDelta":
    case "ToolCallRequested":
    case "ToolCallInvalid":
    case "TurnCompleted":
      return k === "model"
    case "TurnFailed":
      return k === "model" || k === "system"
    case "TurnInterrupted":
      return k === "user" || k === "system"
    case "ToolCallApproved":
      return k === "user" || e.by === "policy:auto"
    case "ToolExecutionStarted":
    case "ToolExecutionSucceeded":
    case "ToolExecutionFailed":
      return k === "tool"
    case "ToolExecutionCancelled":
      return k === "user" || k === "system" || k === "tool"
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}

const tooLong = (text: string, max: number): boolean => text.length > max

const jsonChars = (value: unknown): number => {
  try {
    return JSON.stringify(value)?.length ?? 0
  } catch {
    return Infinity
  }
}

/**
 * Why `e` cannot follow the tape folded into `s`, or null when the live writer could have appended it there.
 * `s` must be the fold of every event before `e` (seq `s.head + 1`); `previous` the event before it, if any.
 */
export const inadmissible = (s: SessionState, e: Envelope, previous: Envelope | undefined, ctx: Pick<DecideContext, "checkTool">): string | null => {
  if (e.seq !== s.head + 1) return `seq ${e.seq} where ${s.head + 1} was expected`
  if (previous !== undefined && e.at < previous.at) return `at ${e.at} goes back in time (the event before has ${previous.at})`
  if (!actorOk(e)) return `${e.type} cannot be caused by ${JSON.stringify(e.by)}`
  if (s.head === 0) return e.type === "SessionCreated" ? (e.title !== undefined && tooLong(e.title, TAPE_CAPS.titleChars) ? "the title is too long" : null) : `the first event must be SessionCreated, not ${e.type}`
  const calls = s.commands.calls
  const streaming = s.interrupts.streaming
  const status = (callId: string) => calls.get(callId)?.status
  switch (e.type) {
    case "SessionCreated":
      return "a tape has one SessionCreated, first"
    case "UserMessageAdded":
      if (tooLong(e.text, TAPE_CAPS.messageChars)) return `the message is longer than ${TAPE_CAPS.messageChars} characters`
      if (e.messageId !== messageIdAt(e.seq)) return `messageId ${JSON.stringify(e.messageId)} should be ${messageIdAt(e.seq)}`
      if (isBusy(s) || s.messages.queue.length > 0) return "a message enters the conversation only when nothing runs and nothing is queued"
      return null
    case "UserMessageQueued":
      if (tooLong(e.text, TAPE_CAPS.messageChars)) return `the message is longer than ${TAPE_CAPS.messageChars} characters`
      if (e.messageId !== messageIdAt(e.seq)) return `messageId ${JSON.stringify(e.messageId)} should be ${messageIdAt(e.seq)}`
      return isBusy(s) ? null : "a message is queued only while the session is busy"
    case "QueuedMessagesFlushed": {
      const queued = s.messages.queue.map((q) => q.messageId)
      if (e.messageIds.length === 0 || e.messageIds.length !== queued.length || e.messageIds.some((id, i) => id !== queued[i])) {
        return "a flush moves exactly the queued messages, in their order"
      }
      return null
    }
    case "QueuedMessageCancelled":
      return s.messages.queue.some((q) => q.messageId === e.messageId) ? null : `message ${e.messageId} is not queued`
    case "TurnStarted":
      if (e.turnId !== turnIdAt(e.seq)) return `turnId ${JSON.stringify(e.turnId)} should be ${turnIdAt(e.seq)}`
      if (streaming !== null) return `turn ${streaming} is still streaming`
      if (s.interrupts.compacting !== null) return "a turn starts only after the compaction before it ends"
      if (s.commands.pending.size + s.commands.active.size > 0) return "a turn starts only when every tool call is resolved"
      if (s.messages.queue.length > 0) return "queued messages must be flushed before a turn starts"
      if (e.retryOf !== undefined && s.interrupts.lastTurn?.turnId !== e.retryOf) return `only the last turn can be retried, not ${e.retryOf}`
      return null
    case "AssistantDelta":
      if (tooLong(e.text, TAPE_CAPS.textChars)) return "the delta is too long"
      return streaming === e.turnId ? null : `turn ${e.turnId} is not streaming`
    case "ToolCallRequested": {
      if (streaming !== e.turnId) return `turn ${e.turnId} is not streaming`
      if (e.callId !== callIdAt(e.seq) || calls.has(e.callId)) return `callId ${JSON.stringify(e.callId)} should be ${callIdAt(e.seq)}`
      if (jsonChars(e.args) > TAPE_CAPS.argsChars) return "the args are too large"
      const check = ctx.checkTool(e.tool, e.args)
      return check.ok ? null : `the call is not valid here: ${check.error}`
    }
    case "ToolCallInvalid":
      if (streaming !== e.turnId) return `turn ${e.turnId} is not streaming`
      if (e.callId !== callIdAt(e.seq) || calls.has(e.callId)) return `callId ${JSON.stringify(e.callId)} should be ${callIdAt(e.seq)}`
      if (tooLong(e.error, TAPE_CAPS.textChars) || jsonChars(e.args) > TAPE_CAPS.argsChars) return "the call is too large"
      return null
    case "TurnCompleted":
    case "TurnInterrupted":
    case "TurnFailed":
      return streaming === e.turnId ? null : `turn ${e.turnId} is not streaming`
    case "ToolCallApproved": {
      if (status(e.callId) !== "pending") return `call ${e.callId} is not pending (it is ${status(e.callId) ?? "unknown"})`
      // A policy approves in the same append as the request, right after it.
      if (e.by === "policy:auto" && !(previous?.type === "ToolCallRequested" && previous.callId === e.callId)) {
        return "a policy approval must follow its request"
      }
      if (e.args === undefined) return null
      const tool = calls.get(e.callId)?.tool ?? ""
      const check = ctx.checkTool(tool, e.args)
      return check.ok ? null : `the edited args are not valid: ${check.error}`
    }
    case "ToolCallRejected":
      if (tooLong(e.reason, TAPE_CAPS.textChars)) return "the reason is too long"
      return status(e.callId) === "pending" ? null : `call ${e.callId} is not pending (it is ${status(e.callId) ?? "unknown"})`
    case "ToolCallReopened":
      return status(e.callId) === "approved" ? null : `call ${e.callId} is not approved and waiting (it is ${status(e.callId) ?? "unknown"})`
    case "ToolExecutionStarted":
      return status(e.callId) === "approved" ? null : `call ${e.callId} is not approved and waiting (it is ${status(e.callId) ?? "unknown"})`
    case "ToolExecutionSucceeded":
    case "ToolExecutionFailed":
      if (tooLong(e.type === "ToolExecutionSucceeded" ? e.output : e.error, TAPE_CAPS.textChars)) return "the result is too long"
      return status(e.callId) === "running" ? null : `call ${e.callId} is not running (it is ${status(e.callId) ?? "unknown"})`
    case "ToolExecutionCancelled": {
      const st = status(e.callId)
      if (st === "running") return null
      if (st === "approved") return e.outcome === "not_run" ? null : `call ${e.callId} never started, so its outcome is not_run`
      return `call ${e.callId} is not approved or running (it is ${st ?? "unknown"})`
    }
    case "InterruptRequested":
      return isBusy(s) ? null : "nothing was running to interrupt"
    case "LoopStopped":
      return streaming === null ? null : "the loop stops between turns, not during one"
    case "CompactionStarted": {
      if (isBusy(s)) return "a compaction starts only when nothing runs"
      if (s.messages.queue.length > 0) return "queued messages must be flushed before a compaction starts"
      if (e.upToSeq >= e.seq) return `upToSeq ${e.upToSeq} must be an earlier seq`
      const covered = coveredBy(s.memory, e.upToSeq)
      if (covered.messages === 0) return `no message of the memory entered it at or before seq ${e.upToSeq}`
      const kept = s.memory.messages[covered.messages]
      // A whole-turn boundary: the cut is right before a message that stays (never inside a turn, never everything).
      if (kept === undefined || kept.seq !== e.upToSeq + 1) return `upToSeq ${e.upToSeq} is not right before a message that stays in the memory`
      return null
    }
    case "MemoryCompacted":
    case "MemoryTrimmed": {
      const open = s.interrupts.compacting
      if (open === null || open.upToSeq !== e.upToSeq) return `no compaction up to seq ${e.upToSeq} is running`
      if (e.type === "MemoryCompacted") return tooLong(e.summary, TAPE_CAPS.textChars) ? "the summary is too long" : null
      const omitted = coveredBy(s.memory, e.upToSeq).messages
      return e.omitted === omitted ? null : `omitted should be ${omitted}, the messages up to seq ${e.upToSeq}`
    }
    case "SessionRenamed":
      return e.title.trim() === "" || tooLong(e.title, TAPE_CAPS.titleChars) ? "the title is empty or too long" : null
    case "ModelChosen":
      return e.model === "" || e.model.length > 128 ? "the model name is empty or too long" : null
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}

/** One refused event of a tape: its position (1-based) and why. */
export interface Inadmissible {
  readonly index: number
  readonly seq: number
  readonly type: string
  readonly reason: string
}

/**
 * Folds `tape` strictly into a fresh state for `session`: the state, or the first event the rules refuse.
 * Each event is checked against the fold of those before it, with the real reducers.
 */
export const foldStrict = (
  session: string,
  tape: ReadonlyArray<Envelope>,
  ctx: Pick<DecideContext, "checkTool">
): { readonly state: SessionState } | { readonly refused: Inadmissible } => {
  const state = initialState(session)
  let previous: Envelope | undefined
  for (let i = 0; i < tape.length; i++) {
    const e = tape[i]!
    const reason = inadmissible(state, e, previous, ctx)
    if (reason !== null) return { refused: { index: i + 1, seq: e.seq, type: e.type, reason } }
    evolve(state, e)
    previous = e
  }
  return { state }
}
