/**
 * HTTP calls to the server's /api (DESIGN.md §5), carrying the page's access token. Stateless: the connection
 * module calls these and owns what they return; responses are validated with the shared schemas.
 */
import { Either, Schema } from "effect"
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

export const ModelInfo = Schema.Struct({
  model: Schema.String,
  provider: Schema.String,
  offline: Schema.Boolean
})
export type ModelInfo = typeof ModelInfo.Type

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

const request = async (ep: Endpoint, path: string, init: RequestInit, fetchImpl: Fetch): Promise<string> => {
  const headers = new Headers(init.headers)
  if (ep.token !== null) headers.set("authorization", `Bearer ${ep.token}`)
  let res: Response
  try {
    res = await fetchImpl(new URL(path, ep.origin).toString(), { ...init, headers })
  } catch (e) {
    throw new ApiError("network", `the server could not be reached (${e instanceof Error ? e.message : String(e)})`, 0)
  }
  const text = await res.text()
  if (!res.ok) {
    const problem = decodeProblem(text)
    if (Either.isRight(problem)) throw new ApiError(problem.right.error.code, problem.right.error.message, res.status)
    throw new ApiError(`http_${res.status}`, text.slice(0, 300) || res.statusText, res.status)
  }
  return text
}

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
  /** The most recently updated sessions (the first page of the list). */
  sessions: async (): Promise<ReadonlyArray<SessionSummary>> =>
    decodeWith(SessionsPage, await request(ep, "/api/sessions", {}, fetchImpl), "sessions list").sessions,
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
