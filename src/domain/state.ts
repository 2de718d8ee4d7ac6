/**
 * A session's folded state: the three reducers plus the incrementally kept projections.
 * `evolve` mutates the state it is handed (the caller owns it) in O(size of the event); `fold(tape)` builds one.
 */
import type { Envelope } from "./Event.ts"
import { type CommandsState, evolveCommands, initialCommands } from "./reducers/commands.ts"
import { evolveInterrupts, initialInterrupts, type InterruptsState } from "./reducers/interrupts.ts"
import { evolveMessages, initialMessages, type MessagesState } from "./reducers/messages.ts"
import { evolveMemory, initialMemory, type MemoryState } from "./projections/memory.ts"

/** Counters behind the session summary projection. */
export interface Counters {
  title: string | null
  createdAt: number
  updatedAt: number
  messages: number
  turns: number
  toolCalls: number
  inputTokens: number
  outputTokens: number
  forkedFrom: { readonly session: string; readonly seq: number } | null
  importedFrom: { readonly session: string; readonly seq: number } | null
  /** The model a user chose for this session's next turns (ModelChosen), if any. */
  model: string | null
  /** Model turns that were not retries: the scripted model's entry of the next new turn. */
  newTurns: number
  /** The script entry of each turn (a retry plays its original's entry again). */
  readonly entries: Map<string, number>
}

export interface SessionState {
  readonly session: string
  /** Last folded seq (0 before SessionCreated). */
  head: number
  readonly messages: MessagesState
  readonly commands: CommandsState
  readonly interrupts: InterruptsState
  readonly memory: MemoryState
  readonly counters: Counters
}

export const initialState = (session: string): SessionState => ({
  session,
  head: 0,
  messages: initialMessages(),
  commands: initialCommands(),
  interrupts: initialInterrupts(),
  memory: initialMemory(),
  counters: {
    title: null,
    createdAt: 0,
    updatedAt: 0,
    messages: 0,
    turns: 0,
    toolCalls: 0,
    inputTokens: 0,
    outputTokens: 0,
    forkedFrom: null,
    importedFrom: null,
    model: null,
    newTurns: 0,
    entries: new Map()
  }
})

const TITLE_CHARS = 60

const evolveCounters = (c: Counters, e: Envelope): void => {
  if (e.seq === 1) c.createdAt = e.at
  c.updatedAt = e.at
  switch (e.type) {
    case "SessionCreated":
      if (e.title !== undefined) c.title = e.title
      if (e.forkedFrom !== undefined) c.forkedFrom = e.forkedFrom
      if (e.importedFrom !== undefined) c.importedFrom = e.importedFrom
      return
    case "SessionRenamed":
      c.title = e.title
      return
    case "ModelChosen":
      c.model = e.model
      return
    case "UserMessageAdded":
      c.messages++
      if (c.title === null) c.title = e.text.trim().slice(0, TITLE_CHARS)
      return
    case "QueuedMessagesFlushed":
      c.messages += e.messageIds.length
      return
    case "TurnStarted": {
      c.turns++
      const original = e.retryOf === undefined ? undefined : c.entries.get(e.retryOf)
      if (original !== undefined) c.entries.set(e.turnId, original)
      else c.entries.set(e.turnId, c.newTurns++)
      return
    }
    case "ToolCallRequested":
    case "ToolCallInvalid":
      c.toolCalls++
      return
    case "TurnCompleted":
      if (e.usage) {
        c.inputTokens += e.usage.inputTokens
        c.outputTokens += e.usage.outputTokens
      }
      return
    default:
      return
  }
}

/** A completed turn whose calls were all invalid lengthens the streak of such turns; any other completed turn ends it. */
const evolveStreak = (s: SessionState, e: Envelope): void => {
  if (e.type !== "TurnCompleted") return
  const calls = s.commands.byTurn.get(e.turnId) ?? []
  const allInvalid = calls.length > 0 && calls.every((id) => s.commands.calls.get(id)?.status === "invalid")
  s.interrupts.invalidStreak = allInvalid ? s.interrupts.invalidStreak + 1 : 0
}

/** Folds one committed event into `state` (mutating it) and returns it. */
export const evolve = (state: SessionState, e: Envelope): SessionState => {
  state.head = e.seq
  evolveMessages(state.messages, e)
  evolveCommands(state.commands, e)
  evolveInterrupts(state.interrupts, e)
  evolveStreak(state, e)
  evolveMemory(state.memory, e, "callId" in e ? state.commands.calls.get(e.callId) : undefined)
  evolveCounters(state.counters, e)
  return state
}

/** Folds a whole tape (or its prefix up to `at`, inclusive) into a fresh state. */
export const fold = (session: string, tape: Iterable<Envelope>, at: number = Infinity): SessionState => {
  const state = initialState(session)
  for (const e of tape) {
    if (e.seq > at) break
    evolve(state, e)
  }
  return state
}

/** True while a turn streams, the memory is being compacted, or any tool call waits for approval, is approved, or runs. */
export const isBusy = (s: SessionState): boolean =>
  s.interrupts.streaming !== null || s.interrupts.compacting !== null || s.commands.pending.size > 0 || s.commands.active.size > 0
