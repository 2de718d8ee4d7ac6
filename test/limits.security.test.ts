// Issue 10, finding 4, replayed on the real server process over real sockets: size limits that cannot be walked
// around (bytes counted as read, chunked bodies, a cap per line, one tape copy at a time), capped titles and texts,
// a paged and searchable sessions list, and session creation rate-limited per connection and per address.
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { Client } from "./support/server.ts"
import { errorOf, rawHttp, useServers } from "./support/servers.ts"

const start = useServers()

const line = (e: Record<string, unknown>) => `${JSON.stringify({ session: "big", at: 1, by: "system", ...e })}\n`
const created = (extra: Record<string, unknown> = {}) => line({ seq: 1, type: "SessionCreated", ...extra })
const message = (seq: number, text: string) => line({ seq, by: "user:t", type: "UserMessageAdded", messageId: `msg-${seq}`, text })

/** A tape of about `mb` megabytes: SessionCreated, then ~10 KB messages. */
const tapeOf = (mb: number): string => {
  const text = "x".repeat(10_000)
  const parts = [created()]
  for (let seq = 2; parts.length * 10_050 < mb * 1024 * 1024; seq++) parts.push(message(seq, text))
  return parts.join("")
}

const importTape = (port: number, body: BodyInit, headers: Record<string, string> = {}) =>
  fetch(`http://127.0.0.1:${port}/api/sessions/import`, { method: "POST", headers: { "content-type": "application/x-ndjson", ...headers }, body })

const listOf = async (port: number, query = "") => {
  const res = await fetch(`http://127.0.0.1:${port}/api/sessions${query}`)
  expect(res.status).toBe(200)
  return (await res.json()) as { sessions: Array<{ session: string; title: string }>; next: string | null }
}

/** Peak resident memory of a process, in MB (Linux: VmHWM). */
const peakMB = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024

describe("finding 4: size limits that cannot be walked around", () => {
  test("70 MB sent chunked (no content-length) is refused with 413 once 64 MB were read; a lying content-length too", async () => {
    const server = await start()
    // A valid tape to the end (distinct seqs), so only the count of bytes read can stop it.
    const text = "y".repeat(90_000)
    const encoder = new TextEncoder()
    let seq = 1
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull: (c) => {
        if (sent >= 70 * 1024 * 1024) return c.close()
        const bytes = encoder.encode(seq === 1 ? created() : message(seq, text))
        seq++
        sent += bytes.length
        c.enqueue(bytes)
      }
    })
    const res = await importTape(server.port, body)
    expect(res.status).toBe(413)
    expect(await errorOf(res)).toEqual({ code: "too_large", message: `the body may be at most ${64 * 1024 * 1024} bytes` })
    // A content-length over the cap is refused before any byte is read (Bun's own limit is a little higher).
    const answer = await rawHttp(
      server.port,
      `POST /api/sessions/import HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nContent-Type: application/x-ndjson\r\nContent-Length: ${64 * 1024 * 1024 + 1}\r\n\r\n${created()}`,
      (text) => text.includes("}}")
    )
    expect(answer).toStartWith("HTTP/1.1 413")
    expect(answer).toContain('"code":"too_large"')
    expect((await listOf(server.port)).sessions).toEqual([])
    expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200)
  }, 120_000)

  test("a line over 4 MiB is refused with its line number, before the line is whole in memory", async () => {
    const server = await start()
    const res = await importTape(server.port, created() + message(2, "z".repeat(5 * 1024 * 1024)))
    expect(res.status).toBe(400)
    expect(await errorOf(res)).toEqual({ code: "bad_tape", message: `line 2: a line longer than ${4 * 1024 * 1024} bytes refused` })
  })

  test("titles and message texts are capped: a 50 MB title, a 201-character title and a 100,001-character message", async () => {
    const server = await start()
    const huge = await importTape(server.port, created({ title: "T".repeat(50 * 1024 * 1024) }))
    expect(huge.status).toBe(400)
    expect((await errorOf(huge)).message).toContain("line 1: a line longer than")
    const long = await importTape(server.port, created({ title: "T".repeat(201) }))
    expect(await errorOf(long)).toEqual({ code: "bad_tape", message: "line 1: invalid SessionCreated: title: longer than 200 characters" })
    const text = await importTape(server.port, created() + message(2, "m".repeat(100_001)))
    expect(await errorOf(text)).toEqual({ code: "bad_tape", message: "line 2: invalid UserMessageAdded: text: longer than 100000 characters" })
    const post = await fetch(`http://127.0.0.1:${server.port}/api/sessions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "T".repeat(201) })
    })
    expect(post.status).toBe(400)
    expect((await listOf(server.port)).sessions).toEqual([])
    expect((await importTape(server.port, created({ title: "T".repeat(200) }) + message(2, "m".repeat(100_000)))).status).toBe(201)
  })

  test("imports run one at a time: while one is read, another is refused with 429; afterwards the next is served", async () => {
    const server = await start()
    let release: (() => void) | null = null
    const held = new ReadableStream<Uint8Array>({
      start: (c) => {
        c.enqueue(new TextEncoder().encode(created()))
        release = () => c.close()
      }
    })
    const first = importTape(server.port, held)
    await new Promise<void>((resolve, reject) => {
      const check = () => (/import: reading a tape/.test(server.output()) ? resolve() : server.proc.exitCode !== null ? reject(new Error("server exited")) : setTimeout(check, 20))
      check()
    })
    const second = await importTape(server.port, created())
    expect(second.status).toBe(429)
    expect(second.headers.get("retry-after")).toBe("1")
    expect((await errorOf(second)).code).toBe("busy")
    release!()
    expect((await first).status).toBe(201)
    expect((await importTape(server.port, created())).status).toBe(201)
  })

  test("four 60 MB imports at once: one is copied, three are refused, and the server stays far from gigabytes", async () => {
    const server = await start()
    const tape = tapeOf(60)
    const statuses = await Promise.all(Array.from({ length: 4 }, () => importTape(server.port, tape).then((r) => r.status)))
    expect(statuses.sort()).toEqual([201, 429, 429, 429])
    expect(peakMB(server.proc.pid)).toBeLessThan(1024)
    expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200)
  }, 120_000)
})

describe("finding 4: GET /api/sessions is paged and searchable", () => {
  test("pages of `limit` (default 50, at most 200) follow `next` to the end, each session once; `q` searches titles", async () => {
    const server = await start()
    const titles = Array.from({ length: 57 }, (_, i) => (i % 10 === 3 ? `Needle ${i}` : `hay ${i}`))
    for (const title of titles) {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/sessions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ title })
      })
      expect(res.status).toBe(201)
    }
    const first = await listOf(server.port)
    expect(first.sessions).toHaveLength(50)
    expect(first.next).not.toBeNull()
    const second = await listOf(server.port, `?before=${encodeURIComponent(first.next!)}`)
    expect(second.sessions).toHaveLength(7)
    expect(second.next).toBeNull()
    expect(new Set([...first.sessions, ...second.sessions].map((s) => s.title))).toEqual(new Set(titles))
    const seen: Array<string> = []
    let next: string | null = ""
    while (next !== null) {
      const page: Awaited<ReturnType<typeof listOf>> = await listOf(server.port, `?limit=4${next ? `&before=${encodeURIComponent(next)}` : ""}`)
      expect(page.sessions.length).toBeLessThanOrEqual(4)
      seen.push(...page.sessions.map((s) => s.session))
      next = page.next
    }
    expect(seen).toEqual([...first.sessions, ...second.sessions].map((s) => s.session))
    const needles = await listOf(server.port, "?q=NEEDLE&limit=200")
    expect(needles.sessions.map((s) => s.title).sort()).toEqual(titles.filter((t) => t.startsWith("Needle")).sort())
    expect((await listOf(server.port, "?q=%25")).sessions).toEqual([])
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions?limit=201`)).status).toBe(400)
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions?q=${"q".repeat(201)}`)).status).toBe(400)
  })
})

describe("finding 4: session creation is rate-limited per address and per connection", () => {
  test("per address (TAPE_SESSIONS_PER_MINUTE=3): websocket hello, POST, import and fork share the budget", async () => {
    const server = await start({ TAPE_SESSIONS_PER_MINUTE: "3" })
    const base = `http://127.0.0.1:${server.port}`
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    expect((await fetch(`${base}/api/sessions`, { method: "POST" })).status).toBe(201)
    expect((await importTape(server.port, created())).status).toBe(201)
    // The budget is spent: every way of creating a session is refused, with a reason, and nothing is created.
    const ws = await Client.connect(server.port)
    await expect(ws.hello(null)).rejects.toThrow(/rate_limited/)
    const post = await fetch(`${base}/api/sessions`, { method: "POST" })
    expect(post.status).toBe(429)
    expect((await errorOf(post)).code).toBe("rate_limited")
    expect((await importTape(server.port, created())).status).toBe(429)
    const fork = await fetch(`${base}/api/sessions/${session}/fork`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"seq":1}' })
    expect(fork.status).toBe(429)
    expect((await listOf(server.port)).sessions).toHaveLength(3)
    // Opening an existing session is not creating one.
    expect(await ws.hello(session)).toBe(session)
    c.close()
    ws.close()
  })

  test("per connection: a flood of hello{session:null} on one socket is cut to its burst of 30; others may still create", async () => {
    const server = await start({ TAPE_SESSIONS_PER_MINUTE: "100000" })
    const c = await Client.connect(server.port)
    const before = c.frames.length
    for (let i = 0; i < 100; i++) c.send({ type: "hello", session: null })
    const answers = () => c.frames.slice(before).filter((f) => f.type === "welcome" || f.type === "error")
    await c.until(() => answers().length === 100, "100 answers")
    const welcomes = answers().filter((f) => f.type === "welcome").length
    const limited = answers().filter((f) => f.type === "error" && f.code === "rate_limited").length
    expect(welcomes + limited).toBe(100)
    expect(welcomes).toBeGreaterThanOrEqual(30)
    expect(limited).toBeGreaterThan(0)
    const other = await Client.connect(server.port)
    expect(await other.hello(null)).not.toBe("")
    c.close()
    other.close()
  })
})
