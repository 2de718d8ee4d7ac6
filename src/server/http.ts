/**
 * The HTTP API of DESIGN.md §5 as an @effect/platform router: sessions list, create, export, import, fork, info, health.
 * Bad input answers 4xx with `{"error":{code,message}}` and changes nothing. Static files and /ws are served in Server.ts.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Either, Schema } from "effect"
import { formatTape, parseTape } from "../domain/tapeFile.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore } from "../store/EventStore.ts"
import { ModelInfoTag } from "./Config.ts"

/** Largest tape accepted by import, in bytes. */
export const MAX_IMPORT_BYTES = 64 * 1024 * 1024

const problem = (status: number, code: string, message: string) =>
  HttpServerResponse.unsafeJson({ error: { code, message } }, { status })

const CreateBody = Schema.Struct({ title: Schema.optional(Schema.String.pipe(Schema.maxLength(200))) })
const ForkBody = Schema.Struct({ seq: Schema.Int.pipe(Schema.positive()) })
const SessionParam = Schema.Struct({ id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)) })
const AfterQuery = Schema.Struct({ after: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.nonNegative())) })

/** Reads the body as text (bounded) and decodes JSON with `schema`; an empty body counts as `{}`. */
const jsonBody = <A, I>(schema: Schema.Schema<A, I>) =>
  Effect.gen(function* () {
    const req = yield* HttpServerRequest.HttpServerRequest
    const text = yield* req.text
    return yield* Schema.decodeUnknown(Schema.parseJson(schema))(text.trim() === "" ? "{}" : text)
  })

export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/healthz", Effect.succeed(HttpServerResponse.unsafeJson({ ok: true }))),
  HttpRouter.get(
    "/api/info",
    Effect.map(ModelInfoTag, (info) => HttpServerResponse.unsafeJson(info))
  ),
  HttpRouter.get(
    "/api/sessions",
    Effect.gen(function* () {
      const store = yield* EventStore
      return HttpServerResponse.unsafeJson(yield* store.listSessions())
    })
  ),
  HttpRouter.post(
    "/api/sessions",
    Effect.gen(function* () {
      const body = yield* jsonBody(CreateBody)
      const writer = yield* SessionWriter
      const session = yield* writer.create(body.title !== undefined ? { title: body.title } : {})
      return HttpServerResponse.unsafeJson({ session }, { status: 201 })
    })
  ),
  HttpRouter.get(
    "/api/sessions/:id/events",
    Effect.gen(function* () {
      const { id } = yield* HttpRouter.schemaPathParams(SessionParam)
      const { after } = yield* HttpServerRequest.schemaSearchParams(AfterQuery)
      const store = yield* EventStore
      if ((yield* store.head(id)) === 0) return problem(404, "unknown_session", `session ${id} does not exist`)
      const events = yield* store.read(id, after ?? 0)
      return HttpServerResponse.text(formatTape(events), {
        contentType: "application/x-ndjson",
        headers: { "content-disposition": `attachment; filename="tape-${id}.jsonl"` }
      })
    })
  ),
  HttpRouter.post(
    "/api/sessions/import",
    Effect.gen(function* () {
      const req = yield* HttpServerRequest.HttpServerRequest
      const length = Number(req.headers["content-length"] ?? "0")
      if (length > MAX_IMPORT_BYTES) return problem(413, "too_large", `a tape may be at most ${MAX_IMPORT_BYTES} bytes`)
      const parsed = parseTape(yield* req.text)
      if (Either.isLeft(parsed)) return problem(400, "bad_tape", parsed.left.message)
      const writer = yield* SessionWriter
      const session = yield* writer.adopt(parsed.right, { reason: "import" })
      return HttpServerResponse.unsafeJson({ session }, { status: 201 })
    })
  ),
  HttpRouter.post(
    "/api/sessions/:id/fork",
    Effect.gen(function* () {
      const { id } = yield* HttpRouter.schemaPathParams(SessionParam)
      const { seq } = yield* jsonBody(ForkBody)
      const store = yield* EventStore
      const head = yield* store.head(id)
      if (head === 0) return problem(404, "unknown_session", `session ${id} does not exist`)
      if (seq > head) return problem(400, "bad_seq", `seq ${seq} is past the head of session ${id} (${head})`)
      const prefix = yield* store.read(id, 0, seq)
      const writer = yield* SessionWriter
      const session = yield* writer.adopt(prefix, { reason: "fork", forkedFrom: { session: id, seq } })
      return HttpServerResponse.unsafeJson({ session }, { status: 201 })
    })
  ),
  HttpRouter.catchTags({
    ParseError: (e) => Effect.succeed(problem(400, "bad_request", e.message)),
    RequestError: (e) => Effect.succeed(problem(400, "bad_request", e.message)),
    Rejection: (e) => Effect.succeed(problem(400, e.code, e.message)),
    RouteNotFound: () => Effect.succeed(problem(404, "not_found", "no such route")),
    StoreError: (e) => Effect.logError("store failed", e).pipe(Effect.as(problem(503, "store_error", e.message)))
  })
)
