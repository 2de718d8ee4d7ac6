/**
 * Client commands of the websocket protocol (DESIGN.md §4) and the reports runners send the writer.
 * Together they are the writer's inputs; `decide` turns one into events or a Rejection.
 */
import { Schema } from "effect"
import { JsonObject } from "./Event.ts"

/** Longest user message accepted (characters). */
export const MAX_MESSAGE_CHARS = 100_000
/** Longest session title accepted (characters). */
export const MAX_TITLE_CHARS = 200

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))
const Reason = Schema.String.pipe(Schema.maxLength(2_000))

/** Send a message; while busy it is queued, or with `mode: "interrupt"` it interrupts first. */
export const SendMessage = Schema.Struct({
  type: Schema.Literal("send_message"),
  text: Schema.String.pipe(Schema.maxLength(MAX_MESSAGE_CHARS)),
  mode: Schema.optional(Schema.Literal("queue", "interrupt"))
})
/** Approve a pending tool call, optionally with edited args. */
export const Approve = Schema.Struct({ type: Schema.Literal("approve"), callId: Id, args: Schema.optional(JsonObject) })
/** Reject a pending tool call; the reason goes to the model. */
export const Reject = Schema.Struct({ type: Schema.Literal("reject"), callId: Id, reason: Schema.optional(Reason) })
/** Stop whatever runs: the streaming turn, pending approvals, executions. */
export const Interrupt = Schema.Struct({ type: Schema.Literal("interrupt"), reason: Schema.optional(Reason) })
/** Withdraw a queued message. */
export const CancelQueued = Schema.Struct({ type: Schema.Literal("cancel_queued"), messageId: Id })

/** Run a failed or interrupted turn, or the last reply, again from the same memory. */
export const RetryTurn = Schema.Struct({ type: Schema.Literal("retry_turn"), turnId: Id })
/** Give the session a new title. */
export const Rename = Schema.Struct({ type: Schema.Literal("rename"), title: Schema.String.pipe(Schema.maxLength(MAX_TITLE_CHARS)) })

/** Pick the model the session's next turns use, by the name of one of the server's choices. */
export const ChooseModel = Schema.Struct({ type: Schema.Literal("choose_model"), model: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128)) })

export const Command = Schema.Union(SendMessage, Approve, Reject, Interrupt, CancelQueued, RetryTurn, Rename, ChooseModel)
export type Command = typeof Command.Type

/** What runners and the system report to the writer. Internal: never accepted from a client. */
export type Report =
  | { readonly type: "create"; readonly title?: string; readonly forkedFrom?: { readonly session: string; readonly seq: number } }
  | { readonly type: "model_delta"; readonly turnId: string; readonly text: string }
  | { readonly type: "model_tool_call"; readonly turnId: string; readonly tool: string; readonly args: unknown; readonly description?: string }
  | { readonly type: "model_completed"; readonly turnId: string; readonly usage?: { readonly inputTokens: number; readonly outputTokens: number } }
  | { readonly type: "model_failed"; readonly turnId: string; readonly error: string; readonly retryable: boolean }
  /** The summary of a compaction (the model's answer to Summarize for the memory up to `upToSeq`). */
  | { readonly type: "model_summary"; readonly upToSeq: number; readonly summary: string }
  /** The summary could not be made: the writer trims instead (MemoryTrimmed), so the next turn still fits. */
  | { readonly type: "model_summary_failed"; readonly upToSeq: number; readonly error: string }
  | { readonly type: "tool_started"; readonly callId: string }
  | { readonly type: "tool_succeeded"; readonly callId: string; readonly output: string; readonly truncated?: boolean }
  | { readonly type: "tool_failed"; readonly callId: string; readonly error: string }
  | { readonly type: "tool_cancelled"; readonly callId: string; readonly reason: string; readonly outcome: "not_run" | "unknown" }
  /**
   * Close what was open when the process died (`reason: "restart"`) or at the end of a copied tape (`"fork"`,
   * `"import"`): the streaming turn is interrupted and running executions cancelled with outcome unknown.
   * Approved calls that had not started are kept (they never ran; a restart dispatches them again), cancelled
   * (not_run), or reopened (they await a new approval: an approval from another tape never runs a tool here).
   * `settle` lets queued messages start a turn.
   */
  | {
      readonly type: "close_open"
      readonly reason: string
      readonly approved: "keep" | "cancel" | "reopen"
      readonly settle: boolean
    }
  /** The process running this turn is gone (its lease expired, or it is shutting down): the turn is interrupted. */
  | { readonly type: "abandon_turn"; readonly turnId: string; readonly reason: string }
  /** The runner of this call is gone mid-run: cancelled with outcome unknown, never run again. */
  | { readonly type: "abandon_call"; readonly callId: string; readonly reason: string }

export type Input = Command | Report

/** A typed refusal: nothing is appended. Crosses the wire as a nack's `error`. */
export class Rejection extends Schema.TaggedError<Rejection>()("Rejection", {
  code: Schema.String,
  message: Schema.String
}) {}
