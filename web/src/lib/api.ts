/**
 * HTTP calls to the server's /api (DESIGN.md §5), carrying the page's access token. Stateless: the connection
 * module calls these and owns what they return; responses are validated with the shared schemas.
 */
import { Either, Schema } from "effect"
import { Source } from "../../../src/domain/Event.ts"
import { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"

/** Where the server is and the token to show it (from `?token=` on the page URL). */
export interface Endpoint {
  readonly origin: string
  readonly token: string | null
}

export const endpointOf = (href: string): Endpoint => {
  const url = new URL(href)
  const token = url.searchParams.get("token")
  return { origin: url.origin, token: token === null || token === "" ? null : token }
}

/** The websocket URL: same host, ws(s) scheme, token as a query parameter (browsers cannot set headers on it). */
export const socketUrl = (ep: Endpoint): string => {
  const url = new URL("/ws", ep.origin)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  if (ep.token !== null) url.searchParams.set("token", ep.token)
  return url.toString()
}

/** One model choice of the server (`/api/info`'s `models`): a session picks it by `name`. */
export const ModelChoice = Schema.Struct({
  name: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  default: Schema.Boolean,
  contextTokens: Schema.Number
})
export type ModelChoice = typeof ModelChoice.Type

export const ModelInfo = Schema.Struct({
  model: Schema.String,
  provider: Schema.String,
  offline: Schema.Boolean,
  models: Schema.optionalWith(Schema.Array(ModelChoice), { default: () => [] })
})
export type ModelInfo = typeof ModelInfo.Type

/** One tool of the catalogue (`GET /api/tools`), offered to the model or not (with the reason). */
export const ToolListing = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  /** The args' JSON Schema, as the model is offered it (checked in the editor before an edited approval). */
  parameters: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  policy: Schema.String,
  /** `builtin`, `config` or `mcp:<server>`. */
  source: Schema.String,
  offered: Schema.Boolean,
  reason: Schema.optional(Schema.String)
})
export type ToolListing = typeof ToolListing.Type

/** One MCP server as `/api/tools` reports it (the fields the panel shows; others are ignored). */
export const McpServerStatus = Schema.Struct({
  name: Schema.String,
  transport: Schema.optional(Schema.String),
  policy: Schema.optional(Schema.String),
  state: Schema.String,
  error: Schema.optional(Schema.String),
  tools: Schema.Number,
  skippedCount: Schema.optional(Schema.Number),
  skipped: Schema.optional(Schema.Array(Schema.Struct({ tool: Schema.String, reason: Schema.String }))),
  restarts: Schema.optional(Schema.Number)
})
export type McpServerStatus = typeof McpServerStatus.Type

export const ToolCatalogue = Schema.Struct({ tools: Schema.Array(ToolListing), servers: Schema.Array(McpServerStatus) })
export type ToolCatalogue = typeof ToolCatalogue.Type

/** The request a turn sent (or the next turn would send), as the server renders it (`GET /api/sessions/:id/prompt`). */
export const RenderedPrompt = Schema.Struct({
  session: Schema.String,
  seq: Schema.Number,
  turnId: Schema.NullOr(Schema.String),
  model: Schema.String,
  provider: Schema.String,
  url: Schema.String,
  body: Schema.Unknown
})
export type RenderedPrompt = typeof RenderedPrompt.Type

/** What a page of the sessions list is asked for. */
export interface SessionsQuery {
  /** Only sessions whose title or user messages contain it. */
  readonly q?: string
  /** Only the forks of this session. */
  readonly forkedFrom?: string
  readonly limit?: number
}

/** A refused or failed request, with the server's error code when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number
  ) {
    super(message)
  }
}

const ProblemBody = Schema.Struct({ error: Schema.Struct({ code: Schema.String, message: Schema.String }) })
const Created = Schema.Struct({ session: Schema.String })
const SessionsPage = Schema.Struct({ sessions: Schema.Array(SessionSummary), next: Schema.NullOr(Schema.String) })
const decodeProblem = Schema.decodeUnknownEither(Schema.parseJson(ProblemBody))

type Fetch = (input: string, init?: RequestInit) => Promise<Response>

/** Sends a request with the token; a refusal (not 2xx) is thrown as an ApiError with the server's code. */
const respond = async (ep: Endpoint, path: string, init: RequestInit, fetchImpl: Fetch): Promise<Response> => {
  const headers = new Headers(init.headers)
  if (ep.token !== null) headers.set("authorization", `Bearer ${ep.token}`)
  let res: Response
  try {
    res = await fetchImpl(new URL(path, ep.origin).toString(), { ...init, headers })
  } catch (e) {
    throw new ApiError("network", `the server could not be reached (${e instanceof Error ? e.message : String(e)})`, 0)
  }
  if (res.ok) return res
  const text = await res.text()
  const problem = decodeProblem(text)
  if (Either.isRight(problem)) throw new ApiError(problem.right.error.code, problem.right.error.message, res.status)
  throw new ApiError(`http_${res.status}`, text.slice(0, 300) || res.statusText, res.status)
}

const request = async (ep: Endpoint, path: string, init: RequestInit, fetchImpl: Fetch): Promise<string> =>
  (await respond(ep, path, init, fetchImpl)).text()

/** The first line of a JSON Lines answer (at most 64 KiB of it is read; the rest of the stream is cancelled). */
const firstLine = async (ep: Endpoint, path: string, fetchImpl: Fetch): Promise<string> => {
  const res = await respond(ep, path, {}, fetchImpl)
  if (res.body === null) return ""
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let text = ""
  try {
    while (!text.includes("\n") && text.length < FIRST_LINE_MAX) {
      const { done, value } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
    }
  } finally {
    void reader.cancel().catch(() => undefined)
  }
  const end = text.indexOf("\n")
  return end === -1 ? text : text.slice(0, end)
}
const FIRST_LINE_MAX = 64 * 1024

/** The fields of a tape's first line the branches need (a SessionCreated, with the shared schema's Source). */
const SessionCreatedLine = Schema.Struct({ type: Schema.Literal("SessionCreated"), forkedFrom: Schema.optional(Source) })

const decodeWith = <A, I>(schema: Schema.Schema<A, I>, text: string, what: string): A => {
  const r = Schema.decodeUnknownEither(Schema.parseJson(schema))(text)
  if (Either.isLeft(r)) throw new ApiError("bad_response", `unexpected ${what} from the server: ${r.left.message.slice(0, 300)}`, 200)
  return r.right
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})

/** The HTTP API bound to one endpoint. `fetchImpl` is injectable for tests. */
export const api = (ep: Endpoint, fetchImpl: Fetch = (i, o) => fetch(i, o)) => ({
  info: async (): Promise<ModelInfo> => decodeWith(ModelInfo, await request(ep, "/api/info", {}, fetchImpl), "model info"),
  /** The most recently updated sessions (the first page of the list), optionally searched or only one's forks. */
  sessions: async (query: SessionsQuery = {}): Promise<ReadonlyArray<SessionSummary>> => {
    const params = new URLSearchParams()
    if (query.q !== undefined) params.set("q", query.q)
    if (query.forkedFrom !== undefined) params.set("forkedFrom", query.forkedFrom)
    if (query.limit !== undefined) params.set("limit", String(query.limit))
    const search = params.size === 0 ? "" : `?${params.toString()}`
    return decodeWith(SessionsPage, await request(ep, `/api/sessions${search}`, {}, fetchImpl), "sessions list").sessions
  },
  tools: async (): Promise<ToolCatalogue> => decodeWith(ToolCatalogue, await request(ep, "/api/tools", {}, fetchImpl), "tool catalogue"),
  prompt: async (session: string, seq: number): Promise<RenderedPrompt> =>
    decodeWith(RenderedPrompt, await request(ep, `/api/sessions/${encodeURIComponent(session)}/prompt?seq=${seq}`, {}, fetchImpl), "prompt"),
  /** Removes a session for good (204); `busy` (409) while it runs, `unknown_session` (404). */
  remove: async (session: string): Promise<void> => {
    await request(ep, `/api/sessions/${encodeURIComponent(session)}`, { method: "DELETE" }, fetchImpl)
  },
  /**
   * Where a session was forked from (null: it was not), read from the first line of its tape only: the rest of the
   * stream is cancelled. A tape whose first line is not a SessionCreated of the shared schema is a `bad_response`.
   */
  origin: async (session: string): Promise<{ readonly session: string; readonly seq: number } | null> => {
    const first = await firstLine(ep, `/api/sessions/${encodeURIComponent(session)}/events?after=0`, fetchImpl)
    const created = decodeWith(SessionCreatedLine, first, "tape")
    return created.forkedFrom ?? null
  },
  create: async (title?: string): Promise<string> =>
    decodeWith(Created, await request(ep, "/api/sessions", json(title === undefined ? {} : { title }), fetchImpl), "reply").session,
  /** The tape as JSON Lines, exactly as stored. */
  exportTape: (session: string): Promise<string> =>
    request(ep, `/api/sessions/${encodeURIComponent(session)}/events?after=0`, {}, fetchImpl),
  importTape: async (jsonl: string): Promise<string> =>
    decodeWith(
      Created,
      await request(ep, "/api/sessions/import", { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: jsonl }, fetchImpl),
      "reply"
    ).session,
  fork: async (session: string, seq: number): Promise<string> =>
    decodeWith(Created, await request(ep, `/api/sessions/${encodeURIComponent(session)}/fork`, json({ seq }), fetchImpl), "reply").session
})
export type Api = ReturnType<typeof api>
