/**
 * The HTTP + websocket server on Bun.serve (production mode): every request's Host checked against the server's own
 * names, `/ws` (token and Origin checked) to the bridge, `/api` and `/healthz` (token; Origin for changes) to the
 * @effect/platform router, everything else to the built visualizer. Scoped: closing the scope closes sockets.
 */
import { hostname, networkInterfaces } from "node:os"
import { resolve, sep } from "node:path"
import * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import { Context, Effect, FiberSet } from "effect"
import { describeThrown, oneLine } from "../domain/safeJson.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore } from "../store/EventStore.ts"
import { LlmClient } from "../llm/LlmClient.ts"
import { ToolCatalogue } from "../tools/catalogue.ts"
import { hostnameOf, isLoopback, ModelInfoTag, type ServerConfig, ServerConfigTag, tokenMatches } from "./Config.ts"
import { ClientAddress, MAX_IMPORT_BYTES, makeApi } from "./http.ts"
import { makeCreationLimit } from "./limits.ts"
import { type Conn, makeBridge } from "./WsBridge.ts"

const presentedToken = (req: Request, url: URL): string | null => {
  const auth = req.headers.get("authorization")
  if (auth?.startsWith("Bearer ")) return auth.slice(7).trim()
  return url.searchParams.get("token")
}

const NO_WEB = `<!doctype html><meta charset="utf-8"><title>Agent Tape</title>
<p>The visualizer is not built. Run <code>npm run build:web</code> (or start with <code>npm start</code>, which builds it).</p>`

const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"]

/** `host` as it appears in a Host header: an IPv6 address in brackets. */
const bracketed = (host: string): string => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host).toLowerCase()

/**
 * The names this server answers to in `Host`: its host (and the loopback names when it listens on loopback), every
 * address and the name of this machine when it listens on all interfaces, and TAPE_ALLOWED_HOSTS (a proxy's name).
 * Anything else is refused, which defeats DNS rebinding: a page on evil.example that resolves to 127.0.0.1 still
 * sends `Host: evil.example`.
 */
export const ownHostNames = (config: Pick<ServerConfig, "host" | "allowedHosts">): ReadonlySet<string> => {
  const names = new Set<string>([bracketed(config.host), ...config.allowedHosts])
  const wildcard = config.host === "0.0.0.0" || config.host === "::" || config.host === "[::]"
  if (isLoopback(config.host) || wildcard) for (const n of LOOPBACK_NAMES) names.add(n)
  if (wildcard) {
    names.add(hostname().toLowerCase())
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(bracketed(a.address))
  }
  return names
}

/** A one-line plain-text answer (for everything outside /api). */
const plain = (status: number, text: string, headers: Record<string, string> = {}) =>
  new Response(`${text}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } })

/** The JSON problem body of /api. */
const problem = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  Response.json({ error: { code, message } }, { status, headers })

/** The path decoded, or null when it is not a valid percent-encoding or holds a NUL (no file has such a name). */
const decodedPath = (pathname: string): string | null => {
  try {
    const path = decodeURIComponent(pathname)
    return path.includes("\0") ? null : path
  } catch {
    return null
  }
}

const isApi = (pathname: string) => pathname.startsWith("/api/") || pathname === "/api" || pathname === "/healthz"
const changesState = (method: string) => method !== "GET" && method !== "HEAD" && method !== "OPTIONS"

export const serve = Effect.gen(function* () {
  const config = yield* ServerConfigTag
  const creations = makeCreationLimit(config.sessionsPerMinute)
  const bridge = yield* makeBridge(creations)
  // ClientAddress is given per request (the context of `handle` overrides this placeholder).
  const runtime = yield* Effect.runtime<HttpRouter.HttpRouter.DefaultServices | EventStore | SessionWriter | ModelInfoTag | ToolCatalogue | LlmClient | ClientAddress>().pipe(
    Effect.provideService(ClientAddress, "unknown")
  )
  const app = yield* makeApi(creations)
  const handle = HttpApp.toWebHandlerRuntime(runtime)(app)
  // For logging from Bun's callbacks, which run outside any fiber.
  const run = yield* FiberSet.runtime(yield* FiberSet.make<void, never>())<never>()
  const log = (message: string) => {
    try {
      run(Effect.logError(message))
    } catch {
      // Shutting down: nothing left to log to.
    }
  }
  const webRoot = resolve(config.webRoot)
  const hosts = ownHostNames(config)
  // Client ids must stay distinct across restarts and across the processes sharing a store: `user:<id>` is on the tape.
  const processTag = crypto.randomUUID().slice(0, 6)
  let nextClient = 0

  /**
   * Whether a browser page of `origin` may talk to this server: no Origin (not a browser), an allowed origin, the
   * same host as the request's (already checked) Host, or one of the loopback names on this port. `null` is foreign.
   */
  const originAllowed = (origin: string | null, host: string | null, port: number): boolean => {
    if (origin === null) return true
    if (config.allowedOrigins.includes(origin)) return true
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      return false
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return false
    if (host !== null && url.host === host.trim().toLowerCase()) return true
    const own = isLoopback(config.host) || config.host === "0.0.0.0" || config.host === "::" ? [...LOOPBACK_NAMES, config.host] : [config.host]
    return own.some((h) => origin === `http://${h}:${port}` || origin === `https://${h}:${port}`)
  }

  const staticFile = async (path: string): Promise<Response> => {
    const wanted = resolve(webRoot, "." + path)
    if (wanted !== webRoot && !wanted.startsWith(webRoot + sep)) return plain(404, "not found")
    const file = Bun.file(wanted)
    if (path !== "/" && (await file.exists())) return new Response(file)
    const index = Bun.file(resolve(webRoot, "index.html"))
    if (await index.exists()) return new Response(index, { headers: { "content-type": "text/html; charset=utf-8" } })
    return new Response(NO_WEB, { headers: { "content-type": "text/html; charset=utf-8" } })
  }

  const route = async (req: Request, srv: Bun.Server<Conn>): Promise<Response | undefined> => {
    const url = new URL(req.url)
    const api = isApi(url.pathname)
    const host = req.headers.get("host")
    const name = host === null ? null : hostnameOf(host)
    if (name === null || !hosts.has(name)) {
      const why = "unknown Host: this server answers only to its own names (set TAPE_ALLOWED_HOSTS behind a proxy)"
      return api ? problem(403, "bad_host", why) : plain(403, why)
    }
    const path = decodedPath(url.pathname)
    if (path === null) return api ? problem(400, "bad_url", "malformed URL path") : plain(400, "bad request: malformed URL path")
    const remote = srv.requestIP(req)?.address ?? "unknown"
    if (url.pathname === "/ws") {
      if (!tokenMatches(config.token, presentedToken(req, url))) return plain(401, "access token required")
      if (!originAllowed(req.headers.get("origin"), host, srv.port ?? config.port)) return plain(403, "cross-origin websocket refused")
      if (srv.upgrade(req, { data: bridge.newConn(`${processTag}-${++nextClient}`, remote) })) return undefined
      return plain(426, "expected a websocket upgrade")
    }
    if (api) {
      if (url.pathname !== "/healthz" && !tokenMatches(config.token, presentedToken(req, url))) {
        return problem(401, "unauthorized", "access token required")
      }
      if (changesState(req.method) && !originAllowed(req.headers.get("origin"), host, srv.port ?? config.port)) {
        return problem(403, "bad_origin", "a request from another site's page is refused (set TAPE_ALLOWED_ORIGINS to allow one)")
      }
      return handle(req, Context.make(ClientAddress, remote))
    }
    if (req.method !== "GET" && req.method !== "HEAD") return plain(405, "method not allowed", { allow: "GET, HEAD" })
    return staticFile(path)
  }

  const server = Bun.serve<Conn>({
    hostname: config.host,
    port: config.port,
    // Production mode: an error never answers with Bun's development page (paths, sources, the working directory).
    development: false,
    // Bun's own net, above which it refuses a body itself; the import counts its bytes and refuses at its cap first.
    maxRequestBodySize: MAX_IMPORT_BYTES + 1024 * 1024,
    async fetch(req, srv) {
      try {
        return await route(req, srv)
      } catch (thrown) {
        log(`${req.method} ${oneLine(new URL(req.url).pathname, 200)} failed: ${describeThrown(thrown)}`)
        return plain(500, "internal error: the server failed on this request")
      }
    },
    // Reached only by what fails in Bun before `fetch` (fetch catches its own): a request it could not read.
    error(thrown) {
      log(`a request could not be read: ${describeThrown(thrown)}`)
      return plain(400, "bad request")
    },
    websocket: {
      // Larger frames are refused by the bridge with a typed error, so the connection survives them.
      maxPayloadLength: 16 * 1024 * 1024,
      // Envelopes repeat the same keys frame after frame: a small per-socket window (context kept between messages)
      // takes a streamed delta from ~190 bytes to a few, at a few KB of memory per client.
      perMessageDeflate: { compress: "4KB", decompress: false },
      idleTimeout: 120,
      sendPings: true,
      open: bridge.onOpen,
      message: bridge.onMessage,
      close: bridge.onClose,
      drain: bridge.onDrain
    }
  })

  yield* Effect.addFinalizer(() =>
    bridge.closeAll(1001, "server shutting down").pipe(Effect.zipRight(Effect.promise(() => server.stop(true))))
  )
  const base = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}/`
  return { server, bridge, url: config.token ? `${base}?token=${encodeURIComponent(config.token)}` : base, port: server.port ?? config.port }
})
