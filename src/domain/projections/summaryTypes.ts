/**
 * The session summary row (persistence projection, DESIGN.md §3): one per session, for the sessions list.
 * Stored by every EventStore layer beside the tape, updated in the same append.
 */
import { Schema } from "effect"

export const SessionSummary = Schema.Struct({
  /** Session id. */
  session: Schema.String,
  /** Title given at creation, or the start of the first user message. */
  title: Schema.String,
  /** `at` of the first event. */
  createdAt: Schema.Number,
  /** `at` of the last event. */
  updatedAt: Schema.Number,
  /** Last seq on the tape. */
  head: Schema.Number,
  /** User messages in the conversation (queued ones not counted until flushed). */
  messages: Schema.Number,
  /** Model turns started. */
  turns: Schema.Number,
  /** Tool calls requested (valid or not). */
  toolCalls: Schema.Number,
  /** What the session is doing: idle, streaming, awaiting_approval or executing (recovery looks for open ones). */
  phase: Schema.Literal("idle", "streaming", "awaiting_approval", "executing", "interrupting"),
  /** Tool calls waiting for approval now. */
  pendingApprovals: Schema.Number,
  /** Tokens reported by the provider, summed. */
  tokens: Schema.Struct({ input: Schema.Number, output: Schema.Number }),
  /** Where it was forked from, if it was. */
  forkedFrom: Schema.optional(Schema.Struct({ session: Schema.String, seq: Schema.Number })),
  /** Where it was imported from (the session id in the file and its length), if it was. */
  importedFrom: Schema.optional(Schema.Struct({ session: Schema.String, seq: Schema.Number }))
})
export type SessionSummary = typeof SessionSummary.Type
