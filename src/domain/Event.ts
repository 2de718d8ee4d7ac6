/**
 * The tape's vocabulary: the envelope and every event of DESIGN.md §2, as Effect Schemas.
 * Pure and shared by server, CLI, tests and browser. Owns no behaviour; decide/evolve live elsewhere.
 */
import { Schema } from "effect"

/** Who caused an event: `user:<clientId>`, `model`, `tool`, `system` or `policy:<name>`. */
export const Actor = Schema.String.pipe(
  Schema.filter((s) => s === "model" || s === "tool" || s === "system" || /^(user|policy):[^\s]{1,128}$/.test(s), {
    message: () => "by must be user:<clientId>, model, tool, system or policy:<name>"
  })
)
export type Actor = typeof Actor.Type

/** Any JSON value (tool args, outputs). */
export const Json = Schema.Unknown
/** A JSON object (tool arguments). */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type JsonObject = typeof JsonObject.Type

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))

const event = <T extends string, F extends Schema.Struct.Fields>(type: T, fields: F) =>
  Schema.Struct({ type: Schema.Literal(type), ...fields })

/** Where a copied tape came from: the source session and the last seq copied. */
export const Source = Schema.Struct({ session: Id, seq: Schema.Number })

/** First event of every tape. */
export const SessionCreated = event("SessionCreated", {
  /** Human title of the session. */
  title: Schema.optional(Schema.String),
  /** The tape this one was forked from, and the last seq copied. */
  forkedFrom: Schema.optional(Source),
  /** The tape this one was imported from (its session id inside the file), and how many events it had. */
  importedFrom: Schema.optional(Source)
})
/** A user message that enters the conversation now (the session was idle). */
export const UserMessageAdded = event("UserMessageAdded", { messageId: Id, text: Schema.String })
/** A user message that arrived while busy; it waits, visible to every client, never shown to the model yet. */
export const UserMessageQueued = event("UserMessageQueued", { messageId: Id, text: Schema.String })
/** Queued messages enter the conversation, in this order. */
export const QueuedMessagesFlushed = event("QueuedMessagesFlushed", { messageIds: Schema.Array(Id) })
/** The user withdrew a queued message. */
export const QueuedMessageCancelled = event("QueuedMessageCancelled", { messageId: Id })
/** One model call begins; its prompt is the memory projection at this seq. */
export const TurnStarted = event("TurnStarted", {
  turnId: Id,
  model: Schema.String,
  /** Set when this turn runs again a turn that failed, was interrupted or is regenerated; that turn leaves the memory. */
  retryOf: Schema.optional(Id)
})
/** A streamed text chunk: only the new text. */
export const AssistantDelta = event("AssistantDelta", { turnId: Id, text: Schema.String })
/** The model asked for a tool and the args passed the tool's schema. */
export const ToolCallRequested = event("ToolCallRequested", {
  turnId: Id,
  callId: Id,
  tool: Schema.String,
  args: JsonObject,
  description: Schema.optional(Schema.String)
})
/** The model asked for an unknown tool or gave bad args; the error goes back to the model. */
export const ToolCallInvalid = event("ToolCallInvalid", {
  turnId: Id,
  callId: Id,
  tool: Schema.String,
  error: Schema.String,
  /** What the model sent (a long value is kept as a cut JSON text). */
  args: Schema.optional(Json)
})
/** Token usage reported by the provider. */
export const Usage = Schema.Struct({ inputTokens: Schema.Number, outputTokens: Schema.Number })
/** The stream ended normally. */
export const TurnCompleted = event("TurnCompleted", { turnId: Id, usage: Schema.optional(Usage) })
/** Stopped by the user or by a restart; partial text stays, marked. */
export const TurnInterrupted = event("TurnInterrupted", { turnId: Id, reason: Schema.String })
/** Provider or parsing failure after retries; the session stays usable. */
export const TurnFailed = event("TurnFailed", { turnId: Id, error: Schema.String, retryable: Schema.Boolean })
/** Approved by a user (`by`) or a policy; `args` present when the user edited them. */
export const ToolCallApproved = event("ToolCallApproved", { callId: Id, args: Schema.optional(JsonObject) })
/** Rejected by a user, or cancelled by an interrupt; the reason goes to the model. */
export const ToolCallRejected = event("ToolCallRejected", { callId: Id, reason: Schema.String })
/** A runner took the call. */
export const ToolExecutionStarted = event("ToolExecutionStarted", { callId: Id })
/** The tool's result, size-capped; `truncated` marks a cut output. */
export const ToolExecutionSucceeded = event("ToolExecutionSucceeded", {
  callId: Id,
  output: Schema.String,
  truncated: Schema.optional(Schema.Boolean)
})
/** The tool failed; errors are data the model sees and can correct. */
export const ToolExecutionFailed = event("ToolExecutionFailed", { callId: Id, error: Schema.String })
/** Interrupt, or a restart found it mid-run. `not_run`: it never ran; `unknown`: it may have had effects. */
export const ToolExecutionCancelled = event("ToolExecutionCancelled", {
  callId: Id,
  reason: Schema.String,
  outcome: Schema.Literal("not_run", "unknown")
})
/** Who (`by`) asked to interrupt and why; the same append carries its effects. */
export const InterruptRequested = event("InterruptRequested", { reason: Schema.String })
/** An approval given before this tape was imported or forked no longer counts: the call awaits approval again. */
export const ToolCallReopened = event("ToolCallReopened", { callId: Id, reason: Schema.String })
/** The runtime ended the model/tool loop by itself (turn cap per user message, repeated invalid calls). */
export const LoopStopped = event("LoopStopped", {
  /** `turn_limit` or `invalid_calls`. */
  reason: Schema.Literal("turn_limit", "invalid_calls"),
  /** Model turns since the last user message. */
  turns: Schema.optional(Schema.Number)
})
/**
 * The next turn's prompt would pass the context budget's threshold: the writer starts summarising the memory up to
 * `upToSeq` (whole turns, the oldest first) before the turn. Ends in MemoryCompacted or MemoryTrimmed.
 */
export const CompactionStarted = event("CompactionStarted", {
  /** The last seq whose messages the summary replaces (a whole-turn boundary, before this event). */
  upToSeq: Schema.Int.pipe(Schema.positive()),
  /** The memory's size in tokens when it started. */
  tokensBefore: Schema.Int.pipe(Schema.nonNegative())
})
/** The model's memory up to `upToSeq` is replaced by `summary` (context budget); the UI view keeps everything. */
export const MemoryCompacted = event("MemoryCompacted", {
  upToSeq: Schema.Int.pipe(Schema.positive()),
  /** What the model made of the replaced messages; it sees it as a marked summary, not as instructions. */
  summary: Schema.String,
  tokensBefore: Schema.Int.pipe(Schema.nonNegative()),
  tokensAfter: Schema.Int.pipe(Schema.nonNegative())
})
/**
 * The summary could not be made (provider error, interrupt, restart): the memory up to `upToSeq` is dropped and the
 * model sees `[N earlier messages omitted]` in its place, so the next turn still fits.
 */
export const MemoryTrimmed = event("MemoryTrimmed", {
  upToSeq: Schema.Int.pipe(Schema.positive()),
  /** How many memory messages were dropped. */
  omitted: Schema.Int.pipe(Schema.nonNegative()),
  tokensBefore: Schema.Int.pipe(Schema.nonNegative()),
  tokensAfter: Schema.Int.pipe(Schema.nonNegative()),
  /** Why no summary was made. */
  reason: Schema.optional(Schema.String)
})
/** A user renamed the session. */
export const SessionRenamed = event("SessionRenamed", { title: Schema.String })
/** A user picked the model this session's next turns use (one of the server's choices, by name). */
export const ModelChosen = event("ModelChosen", { model: Schema.String })

export const eventSchemas = [
  SessionCreated,
  UserMessageAdded,
  UserMessageQueued,
  QueuedMessagesFlushed,
  QueuedMessageCancelled,
  TurnStarted,
  AssistantDelta,
  ToolCallRequested,
  ToolCallInvalid,
  TurnCompleted,
  TurnInterrupted,
  TurnFailed,
  ToolCallApproved,
  ToolCallRejected,
  ToolExecutionStarted,
  ToolExecutionSucceeded,
  ToolExecutionFailed,
  ToolExecutionCancelled,
  InterruptRequested,
  ToolCallReopened,
  LoopStopped,
  CompactionStarted,
  MemoryCompacted,
  MemoryTrimmed,
  SessionRenamed,
  ModelChosen
] as const

/** Any event payload (without the envelope header). */
export const Event = Schema.Union(...eventSchemas)
export type Event = typeof Event.Type
export type EventType = Event["type"]
export type EventOf<T extends EventType> = Extract<Event, { type: T }>
export const eventTypes: ReadonlyArray<EventType> = eventSchemas.map((s) => s.fields.type.literals[0])

/** The envelope header every stored and sent event carries. */
export const Header = Schema.Struct({
  /** Session id. */
  session: Id,
  /** 1.., gapless per session. */
  seq: Schema.Int.pipe(Schema.positive()),
  /** Epoch ms, from the writer's clock. */
  at: Schema.Number.pipe(Schema.finite(), Schema.nonNegative()),
  /** Who caused it. */
  by: Actor
})
export type Header = typeof Header.Type

/** A committed event: header plus payload, flat (`{session, seq, at, by, type, ...fields}`). */
export const Envelope = Schema.Union(...eventSchemas.map((s) => Schema.extend(Header, s)))
export type Envelope = Header & Event
export type EnvelopeOf<T extends EventType> = Header & EventOf<T>

/** An event the writer is about to append: payload plus its actor; seq/at/session are the writer's. */
export type Draft = Event & { readonly by: Actor }

/**
 * The one key order of an envelope everywhere (writer, store, import): header first, then the event's own fields as
 * they come. Two servers sending the same event send the same bytes.
 */
export const canonicalEnvelope = (e: Envelope): Envelope => {
  const { session, seq, at, by, type, ...fields } = e
  return { session, seq, at, by, type, ...fields } as Envelope
}

export const decodeEnvelope = Schema.decodeUnknownEither(Envelope)
export const decodeEnvelopeSync = Schema.decodeUnknownSync(Envelope)
export const encodeEnvelope = Schema.encodeSync(Envelope)
