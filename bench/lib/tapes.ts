/**
 * Synthetic tapes for the benches: realistic conversations (user messages, streamed turns of many deltas, some tool
 * calls with approval and result), valid envelopes in seq order. Deterministic; no clock.
 */
import type { Envelope } from "../../src/domain/Event.ts"

export interface TapeShape {
  /** Conversation messages to produce (a user message and its reply count as two). */
  readonly messages: number
  /** AssistantDelta events per turn. */
  readonly deltasPerTurn: number
  /** Every n-th turn asks for a tool (approved, run, succeeded) and gets a follow-up turn; 0 for none. */
  readonly toolEvery: number
  /** Characters per delta. */
  readonly deltaChars?: number
}

/** Builds a tape lazily, so a million events need not sit in memory twice. */
export function* tape(session: string, shape: TapeShape, at0 = 1_763_700_000_000): Generator<Envelope> {
  let seq = 0
  const at = () => at0 + seq * 20
  const text = "abcdefghijklmnopqrstuvwxyz".slice(0, shape.deltaChars ?? 4)
  yield { session, seq: ++seq, at: at(), by: "system", type: "SessionCreated", title: "bench" }
  let messages = 0
  let turns = 0
  const streamTurn = function* (): Generator<Envelope, boolean> {
    const turnId = `turn-${seq + 1}`
    yield { session, seq: ++seq, at: at(), by: "system", type: "TurnStarted", turnId, model: "bench" }
    for (let i = 0; i < shape.deltasPerTurn; i++) yield { session, seq: ++seq, at: at(), by: "model", type: "AssistantDelta", turnId, text }
    turns++
    if (shape.toolEvery > 0 && turns % shape.toolEvery === 0) {
      const callId = `call-${seq + 1}`
      yield { session, seq: ++seq, at: at(), by: "model", type: "ToolCallRequested", turnId, callId, tool: "eval", args: { code: "6*7" } }
      yield { session, seq: ++seq, at: at(), by: "system", type: "TurnCompleted", turnId, usage: { inputTokens: 10, outputTokens: 10 } }
      yield { session, seq: ++seq, at: at(), by: "user:c1", type: "ToolCallApproved", callId }
      yield { session, seq: ++seq, at: at(), by: "tool", type: "ToolExecutionStarted", callId }
      yield { session, seq: ++seq, at: at(), by: "tool", type: "ToolExecutionSucceeded", callId, output: "42" }
      return true
    }
    yield { session, seq: ++seq, at: at(), by: "model", type: "TurnCompleted", turnId, usage: { inputTokens: 10, outputTokens: 10 } }
    return false
  }
  while (messages < shape.messages) {
    yield { session, seq: ++seq, at: at(), by: "user:c1", type: "UserMessageAdded", messageId: `msg-${seq}`, text: `question ${messages}` }
    messages++
    // A tool call loops back into a follow-up turn, as the writer does.
    while (messages < shape.messages) {
      messages++
      const looped = yield* streamTurn()
      if (!looped) break
    }
  }
}

/** The tape as an array. */
export const tapeArray = (session: string, shape: TapeShape): Array<Envelope> => Array.from(tape(session, shape))
