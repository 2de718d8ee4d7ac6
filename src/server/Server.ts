/**
 * The HTTP + websocket server on Bun.serve: `/ws` (origin and token checked) to the bridge, `/api` and `/healthz`
 * to the @effect/platform router, everything else to the built visualizer. Scoped: closing the scope closes sockets.
 */
import { resolve, sep } from "node:path"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import { Effect } from "effect"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore } from "../store/EventStore.ts"
import { isLoopback, ModelInfoTag, ServerConfigTag, tokenMatches } from "./Config.ts"
import { router } from "./http.ts"
import { type Conn, makeBridge } from "./WsBridge.ts"

const presentedToken = (req: Request, url: URL): string | null => {
  const auth = req.headers.get("authorization")
  if (auth?.startsWith("Bearer ")) return auth.slice(7).trim()
  return url.searchParams.get("token")
}

const NO_WEB = `<!doctype html><meta charset="utf-8"><title>Agent Tape</title>
<p>The visualizer is not built. Run <code>npm run build:web</code> (or start with <code>npm start</code>, which builds it).</p>`

export const serve = Effect.gen(function* () {
  const config = yield* ServerConfigTag
  const bridge = yield* makeBridge
  const runtime = yield* Effect.runtime<HttpRouter.HttpRouter.DefaultServices | EventStore | SessionWriter | ModelInfoTag>()
  const app = yield* HttpRouter.toHttpApp(router)
  const handle = HttpApp.toWebHandlerRuntime(runtime)(app)
  const webRoot = resolve(config.webRoot)
  // Client ids must stay distinct across restarts and across the processes sharing a store: `user:<id>` is on the tape.
  const processTag = crypto.randomUUID().slice(0, 6)
  let nextClient = 0

  /** Same-origin (by the names this server answers to) or explicitly allowed; a missing Origin is a non-browser client. */
  const originAllowed = (origin: string | null, port: number): boolean => {
    if (origin === null) return true
    if (config.allowedOrigins.includes(origin)) return true
    const own = isLoopback(config.host) || config.host === "0.0.0.0" || config.host === "::"
      ? ["127.0.0.1", "localhost", "[::1]", config.host]
      : [config.host]
    return own.some((h) => origin === `http://${h}:${port}` || origin === `https://${h}:${port}`)
  }

  const staticFile = async (pathname: string): Promise<Response> => {
    const wanted = resolve(webRoot, "." + decodeURIComponent(pathname))
    if (wanted !== webRoot && !wanted.startsWith(webRoot + sep)) return new Response("not found", { status: 404 })
    const file = Bun.file(wanted)
    if (pathname !== "/" && (await file.exists())) return new Response(file)
    const index = Bun.file(resolve(webRoot, "index.html"))
    if (await index.exists()) return new Response(index, { headers: { "content-type": "text/html; charset=utf-8" } })
    return new Response(NO_WEB, { headers: { "content-type": "text/html; charset=utf-8" } })
  }

  const server = Bun.serve<Conn>({
    hostname: config.host,
    port: config.port,
    async fetch(req, srv) {
      const url = new URL(req.url)
      if (url.pathname === "/ws") {
        if (!tokenMatches(config.token, presentedToken(req, url))) return new Response("access token required", { status: 401 })
        if (!originAllowed(req.headers.get("origin"), srv.port ?? config.port)) {
          return new Response("cross-origin websocket refused", { status: 403 })
        }
        const remote = srv.requestIP(req)?.address ?? "unknown"
        if (srv.upgrade(req, { data: bridge.newConn(`${processTag}-${++nextClient}`, remote) })) return undefined
        return new Response("expected a websocket upgrade", { status: 426 })
      }
      if (url.pathname.startsWith("/api/") || url.pathname === "/healthz") {
        if (url.pathname !== "/healthz" && !tokenMatches(config.token, presentedToken(req, url))) {
          return Response.json({ error: { code: "unauthorized", message: "access token required" } }, { status: 401 })
        }
        return handle(req)
      }
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed", { status: 405 })
      return staticFile(url.pathname)
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
