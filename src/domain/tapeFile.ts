/**
 * Tape files: a session's envelopes as JSON Lines (one per line), for fixtures, export, import and the CLI.
 * Pure: parses and checks with the real Envelope schema, formats; reads no files itself.
 */
import { Data, Either, ParseResult } from "effect"
import { decodeEnvelope, type Envelope, encodeEnvelope, eventTypes } from "./Event.ts"

/** A tape that cannot be used; `line` is 1-based in the text (null when the fault is the tape as a whole). */
export class TapeError extends Data.TaggedError("TapeError")<{
  /** Line of the text at fault, 1-based; null for a whole-tape fault (e.g. empty). */
  readonly line: number | null
  /** What was wrong, naming the line. */
  readonly message: string
}> {}

const known = new Set<string>(eventTypes)

const fail = (line: number | null, what: string): Either.Either<never, TapeError> =>
  Either.left(new TapeError({ line, message: line === null ? what : `line ${line}: ${what}` }))

const describeIssues = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ")

/** Why one parsed JSON value is not an envelope, using the real schema (unknown `type` named plainly). */
const decodeLine = (value: unknown): Either.Either<Envelope, string> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return Either.left("expected a JSON object (one envelope)")
  const type: unknown = "type" in value ? value.type : undefined
  if (type === undefined) return Either.left("type: is missing")
  if (typeof type !== "string" || !known.has(type)) return Either.left(`unknown event type ${JSON.stringify(type)}`)
  return Either.mapLeft(decodeEnvelope(value, { errors: "all" }), (e) => `invalid ${type}: ${describeIssues(e)}`)
}

/**
 * Parses a JSON Lines tape: blank lines are ignored; every other line must be an envelope. Checks one session
 * throughout, seq 1..N without gaps, and SessionCreated first. The error names the line and what was wrong.
 */
export const parseTape = (text: string): Either.Either<ReadonlyArray<Envelope>, TapeError> => {
  const events: Array<Envelope> = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim()
    if (raw === "") continue
    const lineNo = i + 1
    let value: unknown
    try {
      value = JSON.parse(raw)
    } catch (cause) {
      return fail(lineNo, `not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`)
    }
    const decoded = decodeLine(value)
    if (Either.isLeft(decoded)) return fail(lineNo, decoded.left)
    const e = decoded.right
    const first = events[0]
    if (first === undefined && e.type !== "SessionCreated") return fail(lineNo, `the first event must be SessionCreated, got ${e.type}`)
    if (first !== undefined && e.session !== first.session) {
      return fail(lineNo, `session ${JSON.stringify(e.session)} differs from the tape's session ${JSON.stringify(first.session)}`)
    }
    if (e.seq !== events.length + 1) return fail(lineNo, `seq ${e.seq} where ${events.length + 1} was expected (seq runs 1..N without gaps)`)
    events.push(e)
  }
  if (events.length === 0) return fail(null, "the tape is empty: it needs at least a SessionCreated line")
  return Either.right(events)
}

/** One envelope per line, encoded by the schema, with a final newline (the inverse of `parseTape`). */
export const formatTape = (events: Iterable<Envelope>): string => {
  let out = ""
  for (const e of events) out += `${JSON.stringify(encodeEnvelope(e))}\n`
  return out
}
