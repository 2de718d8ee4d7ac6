/**
 * Tape files: a session's envelopes as JSON Lines (one per line), for fixtures, export, import and the CLI.
 * Pure: reads a tape line by line (each line through the shared JSON guard, capped), checks it with the real
 * Envelope schema, formats; reads no files itself.
 */
import { Data, Either } from "effect"
import { MAX_MESSAGE_CHARS } from "./Command.ts"
import { decodeEnvelope, type Envelope, encodeEnvelope, eventTypes } from "./Event.ts"
import { describeParseError, parseJsonText, quote } from "./safeJson.ts"

/** Longest session title a tape may carry (characters); `POST /api/sessions` holds titles to the same. */
export const MAX_TITLE_CHARS = 200

/** Longest line of a tape, in bytes: one envelope. A longer line is refused before it is kept in memory whole. */
export const MAX_TAPE_LINE_BYTES = 4 * 1024 * 1024

/** A tape that cannot be used; `line` is 1-based in the text (null when the fault is the tape as a whole). */
export class TapeError extends Data.TaggedError("TapeError")<{
  /** Line of the text at fault, 1-based; null for a whole-tape fault (e.g. empty). */
  readonly line: number | null
  /** What was wrong, naming the line. */
  readonly message: string
}> {}

const known = new Set<string>(eventTypes)

const tapeError = (line: number | null, what: string): TapeError =>
  new TapeError({ line, message: line === null ? what : `line ${line}: ${what}` })

/** Why a decoded envelope exceeds a cap of DESIGN.md §5, or undefined. */
const overCap = (e: Envelope): string | undefined => {
  if (e.type === "SessionCreated" && e.title !== undefined && e.title.length > MAX_TITLE_CHARS) {
    return `title: longer than ${MAX_TITLE_CHARS} characters`
  }
  if ((e.type === "UserMessageAdded" || e.type === "UserMessageQueued") && e.text.length > MAX_MESSAGE_CHARS) {
    return `text: longer than ${MAX_MESSAGE_CHARS} characters`
  }
  return undefined
}

/** Why one parsed JSON value is not an envelope, using the real schema (unknown `type` named plainly). */
const decodeLine = (value: unknown): Either.Either<Envelope, string> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return Either.left("expected a JSON object (one envelope)")
  const type: unknown = "type" in value ? value.type : undefined
  if (type === undefined) return Either.left("type: is missing")
  if (typeof type !== "string" || !known.has(type)) {
    return Either.left(`unknown event type ${typeof type === "string" ? quote(type) : `of JSON type ${typeof type}`}`)
  }
  return Either.flatMap(
    Either.mapLeft(decodeEnvelope(value, { errors: "all" }), (e) => `invalid ${type}: ${describeParseError(e)}`),
    (e) => {
      const cap = overCap(e)
      return cap === undefined ? Either.right(e) : Either.left(`invalid ${type}: ${cap}`)
    }
  )
}

/** Reads a tape incrementally: text goes in as it arrives, each line is checked as soon as it is complete. */
export interface TapeReader {
  /** Adds the next piece of text; answers the first fault (the reader refuses everything after it). */
  readonly push: (text: string) => TapeError | undefined
  /** The tape, once every piece was pushed. */
  readonly end: () => Either.Either<ReadonlyArray<Envelope>, TapeError>
}

/**
 * A reader of a JSON Lines tape: blank lines are ignored; every other line must be an envelope of at most
 * MAX_TAPE_LINE_BYTES (through the shared JSON guard: depth, finite numbers), within the caps. Checks one session
 * throughout, seq 1..N without gaps, and SessionCreated first. An error names the line and what was wrong.
 */
export const tapeReader = (): TapeReader => {
  const events: Array<Envelope> = []
  let pending: Array<string> = []
  let pendingChars = 0
  let lineNo = 0
  let failed: TapeError | undefined

  const line = (text: string): TapeError | undefined => {
    lineNo++
    const raw = text.trim()
    if (raw === "") return undefined
    const parsed = parseJsonText(raw, { maxBytes: MAX_TAPE_LINE_BYTES })
    if (Either.isLeft(parsed)) return tapeError(lineNo, parsed.left.message)
    const decoded = decodeLine(parsed.right)
    if (Either.isLeft(decoded)) return tapeError(lineNo, decoded.left)
    const e = decoded.right
    const first = events[0]
    if (first === undefined && e.type !== "SessionCreated") return tapeError(lineNo, `the first event must be SessionCreated, got ${e.type}`)
    if (first !== undefined && e.session !== first.session) {
      return tapeError(lineNo, `session ${JSON.stringify(e.session)} differs from the tape's session ${JSON.stringify(first.session)}`)
    }
    if (e.seq !== events.length + 1) return tapeError(lineNo, `seq ${e.seq} where ${events.length + 1} was expected (seq runs 1..N without gaps)`)
    events.push(e)
    return undefined
  }

  const push = (text: string): TapeError | undefined => {
    if (failed !== undefined) return failed
    let from = 0
    for (;;) {
      const nl = text.indexOf("\n", from)
      if (nl === -1) break
      const piece = text.slice(from, nl)
      const whole = pending.length === 0 ? piece : pending.join("") + piece
      pending = []
      pendingChars = 0
      failed = line(whole)
      if (failed !== undefined) return failed
      from = nl + 1
    }
    if (from < text.length) {
      pending.push(text.slice(from))
      pendingChars += text.length - from
      // UTF-16 units never outnumber UTF-8 bytes: more units than the cap is a line over the cap.
      if (pendingChars > MAX_TAPE_LINE_BYTES) {
        failed = tapeError(lineNo + 1, `a line longer than ${MAX_TAPE_LINE_BYTES} bytes refused`)
        return failed
      }
    }
    return undefined
  }

  const end = (): Either.Either<ReadonlyArray<Envelope>, TapeError> => {
    if (failed === undefined && pending.length > 0) {
      const rest = pending.join("")
      pending = []
      failed = line(rest)
    }
    if (failed !== undefined) return Either.left(failed)
    if (events.length === 0) return Either.left(tapeError(null, "the tape is empty: it needs at least a SessionCreated line"))
    return Either.right(events)
  }

  return { push, end }
}

/** Parses a whole JSON Lines tape held in memory (see `tapeReader` for the rules). */
export const parseTape = (text: string): Either.Either<ReadonlyArray<Envelope>, TapeError> => {
  const reader = tapeReader()
  const failed = reader.push(text)
  return failed !== undefined ? Either.left(failed) : reader.end()
}

/** One envelope per line, encoded by the schema, with a final newline (the inverse of `parseTape`). */
export const formatTape = (events: Iterable<Envelope>): string => {
  let out = ""
  for (const e of events) out += `${JSON.stringify(encodeEnvelope(e))}\n`
  return out
}
