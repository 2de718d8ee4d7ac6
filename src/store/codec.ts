/**
 * Row codec shared by the EventStore layers: batch checks, envelope <-> row, summary <-> JSON text.
 * Every value is validated with the real schemas both ways; no I/O here.
 */
import { Either, ParseResult, Schema } from "effect"
import { type Envelope, encodeEnvelope, eventSchemas, Header } from "../domain/Event.ts"
import { SessionSummary } from "../domain/projections/summaryTypes.ts"
import { StoreError } from "./EventStore.ts"
import { compileGuard, type Guard } from "./guard.ts"

/** One envelope as a storage row: header columns plus the event fields (without `type`) as JSON text. */
export interface EventRow {
  readonly session: string
  readonly seq: number
  readonly at: number
  readonly by: string
  readonly type: string
  readonly payload: string
}

/** Header keys of an envelope; every other key is payload. */
const headerKeys = new Set(["session", "seq", "at", "by", "type"])

const describe = (cause: unknown): string => (ParseResult.isParseError(cause) ? cause.message : String(cause))

/**
 * Checks a batch before any write: every envelope valid and of `session`, seq gapless from `expectedHead + 1`,
 * the summary valid and of the same session. Returns the envelopes as encoded by the schema (excess keys dropped).
 */
export const checkBatch = (
  session: string,
  expectedHead: number,
  events: ReadonlyArray<Envelope>,
  summary: SessionSummary
): Either.Either<ReadonlyArray<Envelope>, StoreError> => {
  if (summary.session !== session) {
    return Either.left(new StoreError({ message: `summary of ${summary.session} given for session ${session}`, session }))
  }
  const summaryOk = summaryGuard?.(summary) ? Either.right(summary) : Schema.validateEither(SessionSummary)(summary)
  if (Either.isLeft(summaryOk)) {
    return Either.left(
      new StoreError({ message: `invalid summary for ${session}: ${summaryOk.left.message}`, session, cause: summaryOk.left })
    )
  }
  const out: Array<Envelope> = []
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    const want = expectedHead + i + 1
    if (event.session !== session || event.seq !== want) {
      return Either.left(
        new StoreError({
          message: `batch for ${session} must hold seq ${want} at index ${i}, got ${event.session}#${event.seq}`,
          session,
          seq: want
        })
      )
    }
    // The compiled guard proves the envelope is already what encoding would return; only the rest pays for Schema.
    if (decoders.get(event.type)?.guard?.(event)) {
      out.push(event)
      continue
    }
    try {
      out.push(encodeEnvelope(event))
    } catch (cause) {
      return Either.left(
        new StoreError({ message: `invalid envelope ${session}#${want}: ${describe(cause)}`, session, seq: want, cause })
      )
    }
  }
  return Either.right(out)
}

const summaryGuard = compileGuard(SessionSummary.ast)

/** An encoded envelope as a row. */
export const toRow = (envelope: Envelope): EventRow => {
  const payload: Record<string, unknown> = {}
  for (const key in envelope) {
    if (!headerKeys.has(key)) payload[key] = envelope[key as keyof Envelope]
  }
  return {
    session: envelope.session,
    seq: envelope.seq,
    at: envelope.at,
    by: envelope.by,
    type: envelope.type,
    payload: JSON.stringify(payload)
  }
}

type Decoder = (input: unknown) => Either.Either<Envelope, ParseResult.ParseError>

/**
 * Per event type: the member of the `Envelope` union (picked by the row's `type` column, so the union's candidates
 * are not tried) and a guard compiled from its AST that accepts, fast, exactly the inputs that decode to themselves.
 * What the guard refuses goes through the Schema decoder, which strips or reports, with the schema's own messages.
 */
const decoders: ReadonlyMap<string, { readonly decode: Decoder; readonly guard: Guard | undefined }> = new Map(
  eventSchemas.map((schema) => {
    const member = Schema.extend(Header, schema)
    const decode: Decoder = Schema.decodeUnknownEither(member)
    return [schema.fields.type.literals[0], { decode, guard: compileGuard(member.ast) }] as const
  })
)

/** A stored row back to an envelope, validated; a corrupt row is a StoreError naming session and seq. */
export const fromRow = (
  session: unknown,
  seq: unknown,
  at: unknown,
  by: unknown,
  type: unknown,
  payload: unknown
): Either.Either<Envelope, StoreError> => {
  const corrupt = (why: string, cause?: unknown) =>
    Either.left(
      new StoreError({
        message: `corrupt event ${String(session)}#${String(seq)}: ${why}`,
        ...(typeof session === "string" ? { session } : {}),
        ...(typeof seq === "number" ? { seq } : {}),
        cause
      })
    )
  const decoder = typeof type === "string" ? decoders.get(type) : undefined
  if (decoder === undefined) return corrupt(`unknown event type ${JSON.stringify(type)}`)
  let fields: unknown
  try {
    fields = typeof payload === "string" ? JSON.parse(payload) : payload
  } catch (cause) {
    return corrupt("payload is not JSON", cause)
  }
  if (typeof fields !== "object" || fields === null || Array.isArray(fields)) {
    return corrupt("payload is not a JSON object")
  }
  // Header first (the order of exported tapes); payload keys never override it.
  const candidate: Record<string, unknown> = { session, seq, at, by, type }
  for (const key in fields) {
    if (!headerKeys.has(key)) candidate[key] = (fields as Record<string, unknown>)[key]
  }
  if (decoder.guard !== undefined && decoder.guard(candidate)) {
    // The guard proved that decoding would return this very value; the type follows from the schema.
    return Either.right(candidate as unknown as Envelope)
  }
  const decoded = decoder.decode(candidate)
  return Either.isRight(decoded) ? Either.right(decoded.right) : corrupt(decoded.left.message, decoded.left)
}

/** A summary as stored JSON text (validated). */
export const summaryToJson = (summary: SessionSummary): string => JSON.stringify(Schema.encodeSync(SessionSummary)(summary))

const decodeSummary = Schema.decodeUnknownEither(Schema.parseJson(SessionSummary))

/** Stored JSON text back to a summary; a corrupt row is a StoreError naming the session. */
export const summaryFromJson = (session: string, text: unknown): Either.Either<SessionSummary, StoreError> =>
  Either.mapLeft(
    decodeSummary(text),
    (cause) => new StoreError({ message: `corrupt summary of ${session}: ${cause.message}`, session, cause })
  )
