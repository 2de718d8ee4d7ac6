/**
 * Websocket frames of DESIGN.md §4, as Effect Schemas shared by the server and the browser.
 * Every frame is validated both ways; a frame that does not decode gets an `error` frame with code `bad_frame`.
 */
import { Schema } from "effect"
import { Command } from "../domain/Command.ts"
import { Envelope } from "../domain/Event.ts"
import { decodeJsonText } from "../domain/safeJson.ts"

/** Largest frame accepted, in bytes. */
export const MAX_FRAME_BYTES = 1024 * 1024

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256))

/** Open (or create, with `session: null`) a session and get every event after `after`, then live ones. */
export const Hello = Schema.Struct({
  type: Schema.Literal("hello"),
  session: Schema.NullOr(Id),
  after: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { default: () => 0 })
})
/** A command for a session; answered by `ack` or `nack` with the same `id`. */
export const CommandFrame = Schema.Struct({
  type: Schema.Literal("command"),
  id: Id,
  session: Id,
  command: Command
})
export const ClientFrame = Schema.Union(Hello, CommandFrame)
export type ClientFrame = typeof ClientFrame.Type

/** The session is open; `head` is its last seq now. */
export const Welcome = Schema.Struct({ type: Schema.Literal("welcome"), session: Id, head: Schema.Number })
/** Committed events of a session, in seq order, with no gaps after the last seen. */
export const EventsFrame = Schema.Struct({ type: Schema.Literal("events"), session: Id, events: Schema.Array(Envelope) })
/** The command was applied; `seq` is the head after its append. */
export const Ack = Schema.Struct({ type: Schema.Literal("ack"), id: Id, seq: Schema.Number })
/** The command was refused; nothing was appended. */
export const Nack = Schema.Struct({
  type: Schema.Literal("nack"),
  id: Id,
  error: Schema.Struct({ code: Schema.String, message: Schema.String })
})
/** A frame could not be understood or was refused (`bad_frame`, `rate_limited`, `unknown_session`, …). */
export const ErrorFrame = Schema.Struct({ type: Schema.Literal("error"), code: Schema.String, message: Schema.String })
export const ServerFrame = Schema.Union(Welcome, EventsFrame, Ack, Nack, ErrorFrame)
export type ServerFrame = typeof ServerFrame.Type

/** Decodes a client's frame through the shared JSON guard (size, depth, finite numbers); the error never echoes it. */
export const decodeClientFrame = decodeJsonText(ClientFrame, { maxBytes: MAX_FRAME_BYTES })
export const decodeServerFrame = Schema.decodeUnknownEither(Schema.parseJson(ServerFrame))
