/**
 * The shape of the LLM memory projection: exactly what the model sees (DESIGN.md §3).
 * Every tool call carries its result, so a call is never left without one.
 */
import type { JsonObject } from "../Event.ts"

/** One tool call of an assistant turn, paired with its result text. */
export interface MemoryToolCall {
  readonly callId: string
  readonly tool: string
  /** The args the tool ran with (the user's edit if they edited them). */
  readonly args: JsonObject
  /** What the model is told came of the call (output, error, rejection reason, or status). */
  readonly result: string
}

export type MemoryMessage =
  | { readonly role: "user"; readonly text: string }
  /**
   * What stands for the messages up to `upToSeq` after a compaction (MemoryCompacted: the model's summary) or a trim
   * (MemoryTrimmed: `[N earlier messages omitted]`). The model sees it as a marked note, not as instructions.
   */
  | { readonly role: "summary"; readonly text: string; readonly upToSeq: number; readonly omitted: number; readonly trimmed: boolean }
  | {
      readonly role: "assistant"
      readonly turnId: string
      /** The text the model produced, plus a note when it was interrupted or failed. */
      readonly text: string
      readonly toolCalls: ReadonlyArray<MemoryToolCall>
    }

/** The model's input: the conversation in order, no queued messages. */
export interface LlmMemory {
  readonly messages: ReadonlyArray<MemoryMessage>
}
