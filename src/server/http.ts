/**
 * The HTTP API of DESIGN.md §5 as an @effect/platform router: sessions list (paged, searchable), create, export,
 * import (streamed, capped), fork, info, health. Bad input answers 4xx with `{"error":{code,message}}` and changes
 * nothing. Host, token and Origin are checked in Server.ts before a request gets here; static files and /ws too.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Context, Data, Effect, Either, Option, ParseResult, Schema, Stream } from "effect"
import { decodeJsonText, describeParseError } from "../domain/safeJson.ts"
import { formatTape, MAX_TITLE_CHARS, tapeReader } from "../domain/tapeFile.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore, type SessionCursor } from "../store/EventStore.ts"
import { memorySnapshot, promptFor } from "../domain/projections/memory.ts"
import { fold, type SessionState } from "../domain/state.ts"
import { LlmClient } from "../llm/LlmClient.ts"
import { ToolCatalogue } from "../tools/catalogue.ts"
import { ModelInfoTag } from "./Config.ts"
import type { CreationLimit } from "./limits.ts"

/** Largest tape accepted by import, in bytes actually read (whatever `content-length` says). */
export const MAX_IMPORT_BYTES = 64 * 1024 * 1024
/** Largest JSON body of create and fork, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024
/** Imports and forks copied at once; one more is refused with 429 (each holds a whole tape in memory). */
export const MAX_CONCURRENT_COPIES = 1
/** Summaries per page of `GET /api/sessions`: by default, and at most. */
export const SESSIONS_PAGE = { default: 50, max: 200 } as const
/** Longest search text of `GET /api/sessions?q=`. */
export const MAX_QUERY_CHARS = 200

/** Media types of the bodies: JSON for create and fork, JSON Lines for import. */
export const JSON_TYPES: ReadonlyArray<string> = ["application/json"]
export const TAPE_TYPES: ReadonlyArray<string> = ["application/x-ndjson", "application/jsonl", "application/json-lines"]

/** The remote address of the request being handled (given per request by Server.ts), for the per-address limits. */
export class ClientAddress extends Context.Tag("tape/ClientAddress")<ClientAddress, string>() {}

/** A request refused with `status` and a typed `{"error":{code,message}}` body. */
export class HttpProblem extends Data.TaggedError("HttpProblem")<{
  readonly status: number
  readonly code: string
  readonly message: string
  readonly headers?: Readonly<Record<string, string>>
}> {}

const problem = (status: number, code: string, message: string, headers?: Readonly<Record<string, string>>) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status, ...(headers ? { headers } : {}) })

/** The answer for a session the store has no event of. */
const unknownSession = (id: string) => problem(404, "unknown_session", `session ${id} does not exist`)

const tooLarge = (max: number) => new HttpProblem({ status: 413, code: "too_large", message: `the body may be at most ${max} bytes` })

const CreateBody = Schema.Struct({ title: Schema.optional(Schema.String.pipe(Schema.maxLength(MAX_TITLE_CHARS))) })
const ForkBody = Schema.Struct({ seq: Schema.Int.pipe(Schema.positive()) })
const SessionParam = Schema.Struct({ id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)) })
const AfterQuery = Schema.Struct({ after: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())) })

/** `<updatedAt>~<session>`: the opaque `next` of a page, given back as `before`. */
const Cursor = Schema.transformOrFail(Schema.String.pipe(Schema.maxLength(300)), Schema.Struct({ updatedAt: Schema.Number, session: Schema.String }), {
  strict: true,
  decode: (text, _, ast) => {
    const at = text.indexOf("~")
    const updatedAt = Number(text.slice(0, at))
    const session = text.slice(at + 1)
    return at > 0 && Number.isFinite(updatedAt) && session.length > 0 && session.length <= 256
      ? Either.right({ updatedAt, session })
      : Either.left(new ParseResult.Type(ast, text, "expected a cursor given as `next` by a previous page"))
  },
  encode: (c) => Either.right(`${c.updatedAt}~${c.session}`)
})
const SeqQuery = Schema.Struct({ seq: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.positive())) })

/** The model a turn was started with, as its TurnStarted recorded it. */
const modelOfTurn = (state: SessionState, turnId: string): string | undefined => {
  const i = state.messages.turnIndex.get(turnId)
  const item = i === undefined ? undefined : state.messages.items[i]
  return item?.kind === "assistant" ? item.model : undefined
}

const ListQuery = Schema.Struct({
  limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, SESSIONS_PAGE.max))),
  before: Schema.optional(Cursor),
  q: Schema.optional(Schema.String.pipe(Schema.maxLength(MAX_QUERY_CHARS))),
  forkedFrom: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)))
})
const cursorOf = (c: SessionCursor): string => `${c.updatedAt}~${c.session}`

const mediaType = (req: HttpServerRequest.HttpServerRequest): string =>
  (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()

const wrongType = (what: string, accepted: ReadonlyArray<string>) =>
  new HttpProblem({ status: 415, code: "bad_content_type", message: `${what} needs Content-Type: ${accepted.join(" or ")}` })

/**
 * Feeds the body to `onChunk` as it arrives, counting the bytes actually read: past `max` it stops reading and fails
 * with 413, whatever `content-length` said (a chunked body has none).
 */
const readBody = <E>(max: number, onChunk: (chunk: Uint8Array) => Effect.Effect<void, E>) =>
  Effect.gen(function* () {
    const req = yield* HttpServerRequest.HttpServerRequest
    if (Number(req.headers["content-length"] ?? "0") > max) return yield* Effect.fail(tooLarge(max))
    // A request without a body has no stream to read (the platform's stream would fail): it is an empty body.
    if (req.source instanceof Request && req.source.body === null) return
    let read = 0
    yield* Stream.runForEach(req.stream, (chunk): Effect.Effect<void, E | HttpProblem> => {
      read += chunk.byteLength
      return read > max ? Effect.fail(tooLarge(max)) : onChunk(chunk)
    })
  })

/** Decodes UTF-8 (a piece of a stream when `more`); bytes that are not UTF-8 are refused, not replaced. */
const utf8 = (decoder: TextDecoder, chunk: Uint8Array, more: boolean) =>
  Effect.try({
    try: () => decoder.decode(chunk, { stream: more }),
    catch: () => new HttpProblem({ status: 400, code: "bad_request", message: "the body is not UTF-8 text" })
  })

/**
 * Reads a JSON body (bounded) through the shared guard and decodes it with `schema`. An empty body counts as `{}`
 * and needs no Content-Type; any other body must be `application/json`.
 */
const jsonBody = <A, I>(schema: Schema.Schema<A, I>) =>
  Effect.gen(function* () {
    const req = yield* HttpServerRequest.HttpServerRequest
    const type = mediaType(req)
    if (type !== "" && !JSON_TYPES.includes(type)) return yield* wrongType("this body", JSON_TYPES)
    const decoder = new TextDecoder("utf-8", { fatal: true })
    let text = ""
    yield* readBody(MAX_BODY_BYTES, (chunk) => Effect.map(utf8(decoder, chunk, true), (s) => void (text += s)))
    text += yield* utf8(decoder, new Uint8Array(0), false)
    if (text.trim() !== "" && type === "") return yield* wrongType("this body", JSON_TYPES)
    const decoded = decodeJsonText(schema, { maxBytes: MAX_BODY_BYTES })(text.trim() === "" ? "{}" : text)
    if (Either.isLeft(decoded)) {
      const { reason, message } = decoded.left
      return yield* new HttpProblem({ status: reason === "too_large" ? 413 : 400, code: reason === "too_large" ? "too_large" : "bad_request", message })
    }
    return decoded.right
  })

/** Reads a JSON Lines tape as it arrives, line by line, each line checked (and capped) as soon as it is complete. */
const tapeBody = Effect.gen(function* () {
  const req = yield* HttpServerRequest.HttpServerRequest
  if (!TAPE_TYPES.includes(mediaType(req))) return yield* wrongType("a tape", TAPE_TYPES)
  const reader = tapeReader()
  const decoder = new TextDecoder("utf-8", { fatal: true })
  const push = (text: string) => {
    const failed = reader.push(text)
    return failed === undefined ? Effect.void : Effect.fail(new HttpProblem({ status: 400, code: "bad_tape", message: failed.message }))
  }
  yield* readBody(MAX_IMPORT_BYTES, (chunk) => Effect.flatMap(utf8(decoder, chunk, true), push))
  yield* Effect.flatMap(utf8(decoder, new Uint8Array(0), false), push)
  const tape = reader.end()
  if (Either.isLeft(tape)) return yield* new HttpProblem({ status: 400, code: "bad_tape", message: tape.left.message })
  return tape.right
})

/** Builds the API as an app; `creations` is the session-creation limit it shares with the websocket bridge. */
export const makeApi = (creations: CreationLimit) =>
  Effect.gen(function* () {
    const copies = yield* Effect.makeSemaphore(MAX_CONCURRENT_COPIES)
    // Path pattern → methods, filled by `on`: the one list the routes and the 405's Allow are made from.
    const methods = new Map<string, Array<string>>()
    const on = <E1, R1>(method: "GET" | "POST" | "DELETE", path: `/${string}`, handler: HttpRouter.Route.Handler<E1, R1>) => {
      methods.set(path, [...(methods.get(path) ?? []), method])
      return HttpRouter.route(method)(path, handler)
    }
    const allowedFor = (pathname: string): ReadonlyArray<string> => {
      // The most specific pattern first: `/api/sessions/import` before `/api/sessions/:id`.
      const params = (pattern: string) => pattern.split("/").filter((part) => part.startsWith(":")).length
      for (const [pattern, ms] of [...methods].sort(([a], [b]) => params(a) - params(b))) {
        const re = new RegExp(`^${pattern.split("/").map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("/")}$`)
        if (re.test(pathname)) return ms
      }
      return []
    }

    /** Spends one session creation of the client's address, or refuses with 429. */
    const mayCreate = Effect.gen(function* () {
      if (yield* creations.allow(yield* ClientAddress)) return
      return yield* new HttpProblem({
        status: 429,
        code: "rate_limited",
        message: `too many new sessions (at most ${creations.perMinute} a minute per address); wait and try again`,
        headers: { "retry-after": "10" }
      })
    })

    /** Runs a copy (import or fork) if no other runs, else refuses with 429: a tape copy holds a whole tape in memory. */
    const oneCopy = <A, E, R>(copy: Effect.Effect<A, E, R>) =>
      Effect.flatMap(copies.withPermitsIfAvailable(1)(copy), (done) =>
        Option.match(done, {
          onSome: (a) => Effect.succeed(a),
          onNone: () =>
            Effect.fail(new HttpProblem({ status: 429, code: "busy", message: "another import or fork is being copied; try again shortly", headers: { "retry-after": "1" } }))
        }))

    return HttpRouter.empty.pipe(
      on("GET", "/healthz", Effect.succeed(HttpServerResponse.unsafeJson({ ok: true }))),
      on("GET", "/api/info", Effect.map(ModelInfoTag, (info) => HttpServerResponse.unsafeJson(info))),
      on("GET", "/api/tools", Effect.map(ToolCatalogue, (catalogue) => HttpServerResponse.unsafeJson(catalogue.list()))),
      on(
        "GET",
        "/api/sessions",
        Effect.gen(function* () {
          const query = yield* HttpServerRequest.schemaSearchParams(ListQuery)
          const limit = query.limit ?? SESSIONS_PAGE.default
          const store = yield* EventStore
          // One more than the page: whether there is a next page, without a count.
          const found = yield* store.listSessions({
            limit: limit + 1,
            ...(query.before ? { before: query.before } : {}),
            ...(query.q !== undefined && query.q !== "" ? { text: query.q } : {}),
            ...(query.forkedFrom !== undefined ? { forkedFrom: query.forkedFrom } : {})
          })
          const sessions = found.slice(0, limit)
          const last = sessions.at(-1)
          return HttpServerResponse.unsafeJson({ sessions, next: found.length > limit && last ? cursorOf({ updatedAt: last.updatedAt, session: last.session }) : null })
        })
      ),
      on(
        "POST",
        "/api/sessions",
        Effect.gen(function* () {
          const body = yield* jsonBody(CreateBody)
          yield* mayCreate
          const writer = yield* SessionWriter
          const session = yield* writer.create(body.title !== undefined ? { title: body.title } : {})
          return HttpServerResponse.unsafeJson({ session }, { status: 201 })
        })
      ),
      on(
        "GET",
        "/api/sessions/:id/events",
        Effect.gen(function* () {
          const { id } = yield* HttpRouter.schemaPathParams(SessionParam)
          const { after } = yield* HttpServerRequest.schemaSearchParams(AfterQuery)
          const store = yield* EventStore
          if ((yield* store.head(id)) === 0) return unknownSession(id)
          const events = yield* store.read(id, after ?? 0)
          return HttpServerResponse.text(formatTape(events), {
            contentType: "application/x-ndjson",
            headers: { "content-disposition": `attachment; filename="tape-${id}.jsonl"` }
          })
        })
      ),
      on(
        "GET",
        "/api/sessions/:id/prompt",
        Effect.gen(function* () {
          const { id } = yield* HttpRouter.schemaPathParams(SessionParam)
          const { seq } = yield* HttpServerRequest.schemaSearchParams(SeqQuery)
          const store = yield* EventStore
          const head = yield* store.head(id)
          if (head === 0) return unknownSession(id)
          const at = Math.min(seq ?? head, head)
          const events = yield* store.read(id, 0, at)
          const state = fold(id, events)
          // The turn started at or before `at` (its prompt), else the prompt the next turn would get.
          const turn = state.interrupts.lastTurn?.turnId
          // A compaction after that turn started changed the memory since: its prompt is the memory at its own start.
          const started = turn === undefined ? undefined : events.find((e) => e.type === "TurnStarted" && e.turnId === turn)?.seq
          const compactedSince = started !== undefined && events.some((e) => e.seq > started && (e.type === "MemoryCompacted" || e.type === "MemoryTrimmed"))
          const memory = turn === undefined ? memorySnapshot(state) : promptFor(compactedSince ? fold(id, events, started) : state, turn)
          const llm = yield* LlmClient
          const catalogue = yield* ToolCatalogue
          const model = turn === undefined ? (state.counters.model ?? undefined) : modelOfTurn(state, turn)
          const rendered = yield* llm.render({ memory, tools: catalogue.specs(), ...(model === undefined ? {} : { model }) })
          return HttpServerResponse.unsafeJson({ session: id, seq: at, turnId: turn ?? null, toolsNow: true, ...rendered })
        }).pipe(Effect.catchTag("LlmError", (e) => Effect.succeed(problem(503, "render_failed", e.message))))
      ),
      on(
        "DELETE",
        "/api/sessions/:id",
        Effect.gen(function* () {
          const { id } = yield* HttpRouter.schemaPathParams(SessionParam)
          const writer = yield* SessionWriter
          const removed = yield* Effect.either(writer.remove(id))
          if (Either.isRight(removed)) return HttpServerResponse.empty({ status: 204 })
          const e = removed.left
          if (e._tag === "StoreError") return yield* e
          return problem(e.code === "unknown_session" ? 404 : 409, e.code, e.message)
        })
      ),
      on(
        "POST",
        "/api/sessions/import",
        Effect.gen(function* () {
          yield* mayCreate
          const session = yield* oneCopy(
            Effect.gen(function* () {
              yield* Effect.logInfo(`import: reading a tape from ${yield* ClientAddress}`)
              const tape = yield* tapeBody
              const writer = yield* SessionWriter
              return yield* writer.adopt(tape, { reason: "import" })
            })
          )
          return HttpServerResponse.unsafeJson({ session }, { status: 201 })
        })
      ),
      on(
        "POST",
        "/api/sessions/:id/fork",
        Effect.gen(function* () {
          const { id } = yield* HttpRouter.schemaPathParams(SessionParam)
          const { seq } = yield* jsonBody(ForkBody)
          const store = yield* EventStore
          const head = yield* store.head(id)
          if (head === 0) return unknownSession(id)
          if (seq > head) return problem(400, "bad_seq", `seq ${seq} is past the head of session ${id} (${head})`)
          yield* mayCreate
          const session = yield* oneCopy(
            Effect.gen(function* () {
              const prefix = yield* store.read(id, 0, seq)
              const writer = yield* SessionWriter
              return yield* writer.adopt(prefix, { reason: "fork", forkedFrom: { session: id, seq } })
            })
          )
          return HttpServerResponse.unsafeJson({ session }, { status: 201 })
        })
      ),
      HttpRouter.catchTags({
        HttpProblem: (e) => Effect.succeed(problem(e.status, e.code, e.message, e.headers)),
        ParseError: (e) => Effect.succeed(problem(400, "bad_request", describeParseError(e))),
        RequestError: () => Effect.succeed(problem(400, "bad_request", "the request body could not be read")),
        Rejection: (e) => Effect.succeed(problem(400, e.code, e.message)),
        StoreError: (e) => Effect.logError("store failed", e).pipe(Effect.as(problem(503, "store_error", e.message)))
      }),
      HttpRouter.toHttpApp,
      // The router's own miss is not a route's error: caught on the app. A known path with another method is a 405.
      Effect.map(Effect.catchTag("RouteNotFound", (e: HttpServerError.RouteNotFound) => {
        const allow = allowedFor(new URL(e.request.url, "http://x").pathname)
        return Effect.succeed(
          allow.length > 0
            ? problem(405, "method_not_allowed", `${e.request.method} is not allowed here; use ${allow.join(" or ")}`, { allow: allow.join(", ") })
            : problem(404, "not_found", "no such route")
        )
      }))
    )
  }).pipe(Effect.flatten)
