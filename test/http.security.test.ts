// Issue 10, findings 5 and 6 and "also wanted", replayed as attacks on the real server process over real sockets:
// DNS rebinding (foreign Host), cross-site POSTs (foreign Origin, simple content types), Bun's error page for bad
// URLs, 405 with Allow, and nested or out-of-range values in bodies and queries (400 with a reason, never 5xx).
import { describe, expect, test } from "bun:test"
import { ROOT } from "./support/process.ts"
import { rawHttp as raw, useServers } from "./support/servers.ts"

const start = useServers()

const tapeLine = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ session: "x", seq: 1, at: 1, by: "system", type: "SessionCreated", ...extra })

const sessionsOf = async (base: string, init: RequestInit = {}) => {
  const res = await fetch(`${base}/api/sessions`, init)
  return ((await res.json()) as { sessions: Array<unknown> }).sessions
}

describe("finding 6: bad URLs get a one-line 400, never Bun's development page", () => {
  for (const env of [{}, { HOST: "0.0.0.0" }]) {
    test(`GET /%, /%00, /%E0%A4%A${"HOST" in env ? " with HOST=0.0.0.0 (token set)" : " on loopback without a token"}`, async () => {
      const server = await start(env)
      for (const path of ["/%", "/%00", "/%E0%A4%A", "/api/sessions/%E0%A4%A/events", "/a/%2e%2e/%00x"]) {
        const text = await raw(server.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`)
        const [head, body = ""] = text.split("\r\n\r\n")
        expect(head).toStartWith("HTTP/1.1 400")
        expect(body.trim().split("\n")).toHaveLength(1)
        expect(body).not.toContain(ROOT)
        expect(body).not.toContain("__bunfallback")
      }
      // What fails in Bun before routing (an HTTP/1.0 request without Host) reaches the error handler: one line too.
      const noHost = await raw(server.port, "GET / HTTP/1.0\r\n\r\n")
      expect(noHost).toStartWith("HTTP/1.1 400")
      expect(noHost.split("\r\n\r\n")[1]).toBe("bad request\n")
      expect(server.proc.exitCode).toBeNull()
    })
  }
})

describe("finding 5: the loopback API is closed to other sites' pages and to DNS rebinding", () => {
  test("a foreign Host is refused on /api, /ws and /; the server's own names and TAPE_ALLOWED_HOSTS are served", async () => {
    const server = await start({ TAPE_ALLOWED_HOSTS: "tape.example.com, proxy.example:8443" })
    const base = `http://127.0.0.1:${server.port}`
    const status = (path: string, host: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, { headers: { host, ...headers } }).then((r) => r.status)
    const upgrade = { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" }
    for (const evil of [`evil.example:${server.port}`, "evil.example", "127.0.0.1.evil.example", "localhost.", "[::2]", "evil.example:80"]) {
      expect([evil, await status("/api/sessions", evil)]).toEqual([evil, 403])
      expect([evil, await status("/", evil)]).toEqual([evil, 403])
      expect([evil, await status("/ws", evil, upgrade)]).toEqual([evil, 403])
    }
    // A Host that is not a name at all is refused by Bun itself.
    for (const bad of ["a b", "127.0.0.1:99999", ""]) expect(await status("/api/sessions", bad)).toBe(400)
    const refused = await fetch(`${base}/api/sessions`, { headers: { host: `evil.example:${server.port}` } })
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("bad_host")
    for (const own of [`127.0.0.1:${server.port}`, `localhost:${server.port}`, `[::1]:${server.port}`, "LOCALHOST", "tape.example.com", "proxy.example:443"]) {
      expect([own, await status("/api/sessions", own)]).toEqual([own, 200])
    }
    expect(await status("/ws", `localhost:${server.port}`, upgrade)).toBe(101)
  })

  test("a cross-site text/plain import from evil.example is refused and creates nothing; same-origin ndjson works", async () => {
    const server = await start()
    const base = `http://127.0.0.1:${server.port}`
    const post = (path: string, type: string | null, body: string, origin: string | null) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { ...(type ? { "content-type": type } : {}), ...(origin ? { origin } : {}) },
        body
      })
    const attacks: ReadonlyArray<readonly [string, string | null, string, string | null, number]> = [
      // The attack of the finding, then every variant a page could send without a preflight, then the Origin alone.
      ["/api/sessions/import", "text/plain", tapeLine(), "http://evil.example", 403],
      ["/api/sessions/import", "text/plain", tapeLine(), null, 415],
      ["/api/sessions/import", "application/x-www-form-urlencoded", tapeLine(), null, 415],
      ["/api/sessions/import", "multipart/form-data; boundary=x", tapeLine(), null, 415],
      ["/api/sessions/import", null, tapeLine(), null, 415],
      ["/api/sessions/import", "application/x-ndjson", tapeLine(), "http://evil.example", 403],
      ["/api/sessions/import", "application/x-ndjson", tapeLine(), "null", 403],
      ["/api/sessions/import", "application/x-ndjson", tapeLine(), `http://evil.example:${server.port}`, 403],
      ["/api/sessions", "text/plain", "{}", null, 415],
      ["/api/sessions", "text/plain", "{}", "http://evil.example", 403],
      ["/api/sessions", null, "", "http://evil.example", 403],
      ["/api/sessions", "application/json", "{}", "http://evil.example", 403],
      ["/api/sessions", null, '{"title":"x"}', null, 415]
    ]
    for (const [path, type, body, origin, want] of attacks) {
      const res = await post(path, type, body, origin)
      expect([path, type, origin, res.status]).toEqual([path, type, origin, want])
    }
    expect(await sessionsOf(base)).toEqual([])
    // The same requests from the server's own page (or a non-browser client) are served.
    expect((await post("/api/sessions/import", "application/x-ndjson", tapeLine(), base)).status).toBe(201)
    expect((await post("/api/sessions/import", "application/jsonl; charset=utf-8", tapeLine(), null)).status).toBe(201)
    expect((await post("/api/sessions", "application/json", '{"title":"mine"}', `http://localhost:${server.port}`)).status).toBe(201)
    expect((await post("/api/sessions", null, "", null)).status).toBe(201)
    expect(await sessionsOf(base)).toHaveLength(4)
  })

  test("a fork from another site's page is refused", async () => {
    const server = await start()
    const base = `http://127.0.0.1:${server.port}`
    const created = await fetch(`${base}/api/sessions`, { method: "POST" })
    const { session } = (await created.json()) as { session: string }
    const fork = (origin: string | null, type: string) =>
      fetch(`${base}/api/sessions/${session}/fork`, {
        method: "POST",
        headers: { "content-type": type, ...(origin ? { origin } : {}) },
        body: JSON.stringify({ seq: 1 })
      }).then((r) => r.status)
    expect(await fork("http://evil.example", "application/json")).toBe(403)
    expect(await fork(null, "text/plain")).toBe(415)
    expect(await fork(null, "application/json")).toBe(201)
  })
})

describe("also wanted: methods not allowed get 405 with Allow; nested or huge values get 400 with a reason", () => {
  test("405 with Allow on every /api route, and for OPTIONS (no CORS preflight succeeds)", async () => {
    const server = await start()
    const base = `http://127.0.0.1:${server.port}`
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ["DELETE", "/api/sessions", "GET, POST"],
      ["PUT", "/api/sessions", "GET, POST"],
      ["OPTIONS", "/api/sessions/import", "POST"],
      ["GET", "/api/sessions/import", "POST"],
      ["POST", "/api/sessions/abc/events", "GET"],
      ["GET", "/api/sessions/abc/fork", "POST"],
      ["PATCH", "/api/info", "GET"],
      ["POST", "/healthz", "GET"]
    ]
    for (const [method, path, allow] of cases) {
      const res = await fetch(`${base}${path}`, { method })
      expect([method, path, res.status, res.headers.get("allow")]).toEqual([method, path, 405, allow])
      expect(res.headers.get("access-control-allow-origin")).toBeNull()
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("method_not_allowed")
    }
    expect((await fetch(`${base}/api/nothing`)).status).toBe(404)
    expect((await fetch(`${base}/index.html`, { method: "DELETE" })).headers.get("allow")).toBe("GET, HEAD")
  })

  test("nested bodies, 1e309 and bad queries: 400 with a reason, never 5xx, nothing created", async () => {
    const server = await start()
    const base = `http://127.0.0.1:${server.port}`
    const json = (path: string, body: string) =>
      fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body })
    const ndjson = (body: string) =>
      fetch(`${base}/api/sessions/import`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body })
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n)
    const created = (await (await json("/api/sessions", "{}")).json()) as { session: string }
    const cases: ReadonlyArray<readonly [string, () => Promise<Response>, RegExp]> = [
      ["create title nested 20,000", () => json("/api/sessions", `{"title":${deep(20_000)}}`), /nested deeper than 64/],
      ["create title nested 65", () => json("/api/sessions", `{"title":${deep(65)}}`), /nested deeper than 64/],
      ["create title 1e309", () => json("/api/sessions", '{"title":1e309}'), /not finite/],
      ["create title a number", () => json("/api/sessions", '{"title":5}'), /title: expected/],
      ["create title too long", () => json("/api/sessions", JSON.stringify({ title: "t".repeat(201) })), /title: expected a string at most 200/],
      ["create body not JSON", () => json("/api/sessions", "{"), /not valid JSON/],
      ["create body not UTF-8", () => fetch(`${base}/api/sessions`, { method: "POST", headers: { "content-type": "application/json" }, body: new Uint8Array([0x7b, 0xff, 0x7d]) }), /not UTF-8/],
      ["fork seq 1e309", () => json(`/api/sessions/${created.session}/fork`, '{"seq":1e309}'), /not finite/],
      ["fork seq nested", () => json(`/api/sessions/${created.session}/fork`, `{"seq":${deep(10_000)}}`), /nested deeper/],
      ["import at 1e309", () => ndjson(tapeLine({ at: 1e309 }).replace("null", "1e309")), /line 1: .*not finite/],
      ["import at: 1e309 literally", () => ndjson('{"session":"x","seq":1,"at":1e309,"by":"system","type":"SessionCreated"}'), /line 1: .*not finite/],
      ["import line nested 50,000", () => ndjson(`${tapeLine()}\n{"session":"x","seq":2,"at":1,"by":"system","type":"ToolCallApproved","callId":"c","args":{"a":${deep(50_000)}}}`), /line 2: JSON nested deeper/],
      ["import type huge", () => ndjson(tapeLine({ type: "T".repeat(1_000_000) })), /unknown event type "T+"…/],
      ["list limit 1e309", () => fetch(`${base}/api/sessions?limit=1e309`), /limit: /],
      ["list limit 201", () => fetch(`${base}/api/sessions?limit=201`), /limit: expected a number between 1 and 200/],
      ["list before garbage", () => fetch(`${base}/api/sessions?before=${"z".repeat(400)}`), /before: /],
      ["export after -1", () => fetch(`${base}/api/sessions/${created.session}/events?after=-1`), /after: /]
    ]
    for (const [what, request, reason] of cases) {
      const res = await request()
      const body = await res.text()
      expect([what, res.status]).toEqual([what, 400])
      expect([what, body.length < 700]).toEqual([what, true])
      const message = (JSON.parse(body) as { error: { message: string } }).error.message
      expect([what, reason.test(message)]).toEqual([what, true])
    }
    expect(await sessionsOf(base)).toHaveLength(1)
    expect(server.proc.exitCode).toBeNull()
  })
})
