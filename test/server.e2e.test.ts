/**
 * The server end to end: the real process, real websockets, the scripted model over real HTTP.
 * Covers DESIGN.md §4–5 and issue 4: shared sessions, reconnect, crash safety, bad frames, origin, backpressure, fork, import.
 */
import { describe, expect, test } from "bun:test"
import { connect } from "node:net"
import { fold } from "../src/domain/state.ts"
import { uiView } from "../src/domain/projections/ui.ts"
import { memorySnapshot } from "../src/domain/projections/memory.ts"
import { Client, exportTape, tempDir, writeScript } from "./support/server.ts"
import { useServers } from "./support/servers.ts"

const start = useServers()

const gapless = (events: ReadonlyArray<{ seq: number }>) => events.every((e, i) => e.seq === i + 1)

describe("two clients on one session", () => {
  test("see identical tapes and either can approve; the other's approve is refused", async () => {
    const dir = tempDir("two")
    const script = writeScript(dir, {
      turns: [
        { text: "Computing.", toolCalls: [{ tool: "eval", args: { code: "6*7" } }], chunkChars: 3, delayMs: 1 },
        { text: "It is 42.", chunkChars: 3, delayMs: 1 }
      ]
    })
    const server = await start({ LLM_SCRIPT: script })
    const a = await Client.connect(server.port)
    const session = await a.hello(null)
    const b = await Client.connect(server.port)
    await b.hello(session)
    expect((await a.command({ type: "send_message", text: "what is 6*7?" })).type).toBe("ack")
    await b.until(() => b.has((e) => e.type === "ToolCallRequested"), "tool call on b")
    const call = b.events.find((e) => e.type === "ToolCallRequested")
    if (call?.type !== "ToolCallRequested") throw new Error("no call")
    expect((await b.command({ type: "approve", callId: call.callId })).type).toBe("ack")
    const again = await a.command({ type: "approve", callId: call.callId })
    expect(again.type).toBe("nack")
    if (again.type === "nack") expect(again.error.code).toBe("not_pending")
    const done = (c: Client) => c.events.filter((e) => e.type === "TurnCompleted").length === 2
    await a.until(() => done(a), "second turn on a")
    await b.until(() => done(b) && b.events.length === a.events.length, "second turn on b")
    expect(a.events).toEqual(b.events)
    expect(gapless(a.events)).toBe(true)
    expect(a.events.filter((e) => e.type === "ToolExecutionStarted")).toHaveLength(1)
    const text = a.events.filter((e) => e.type === "AssistantDelta").map((e) => (e.type === "AssistantDelta" ? e.text : "")).join("")
    expect(text).toBe("Computing.It is 42.")
    a.close()
    b.close()
  })
})

describe("reconnect", () => {
  test("a client that drops mid-stream and says hello with its last seq gets exactly the missed events", async () => {
    const dir = tempDir("reconnect")
    const script = writeScript(dir, { turns: [{ text: "x".repeat(400), chunkChars: 2, delayMs: 2 }] })
    const server = await start({ LLM_SCRIPT: script })
    const a = await Client.connect(server.port)
    const session = await a.hello(null)
    await a.command({ type: "send_message", text: "go" })
    await a.until(() => a.events.filter((e) => e.type === "AssistantDelta").length >= 5, "a few deltas")
    a.close()
    const lastSeen = a.events.at(-1)!.seq
    const watcher = await Client.connect(server.port)
    await watcher.hello(session)
    await watcher.until(() => watcher.has((e) => e.type === "TurnCompleted"), "the end of the reply")
    const b = await Client.connect(server.port)
    await b.hello(session, lastSeen)
    await b.until(() => b.has((e) => e.type === "TurnCompleted"), "the end on the reconnected client")
    expect(b.events[0]!.seq).toBe(lastSeen + 1)
    const merged = [...a.events.filter((e) => e.seq <= lastSeen), ...b.events]
    expect(gapless(merged)).toBe(true)
    expect(merged).toEqual(watcher.events)
    b.close()
    watcher.close()
  })
})

describe("crash safety", () => {
  test("SIGKILL mid-stream loses no acknowledged event; on restart the turn is marked interrupted and the session goes on", async () => {
    const dir = tempDir("crash")
    const script = writeScript(dir, { turns: [{ text: "y".repeat(2000), chunkChars: 2, delayMs: 2 }, { text: "Back again." }] })
    const env = { LLM_SCRIPT: script, TAPE_STORE: "sqlite", TAPE_DATA: dir }
    const first = await start(env)
    const a = await Client.connect(first.port)
    const session = await a.hello(null)
    const acked: Array<number> = []
    const ack = await a.command({ type: "send_message", text: "stream please" })
    if (ack.type === "ack") acked.push(ack.seq)
    await a.until(() => a.events.filter((e) => e.type === "AssistantDelta").length >= 20, "deltas before the kill")
    const seen = [...a.events]
    await first.stop("SIGKILL")
    const second = await start(env)
    const b = await Client.connect(second.port)
    await b.hello(session)
    await b.until(() => b.has((e) => e.type === "TurnInterrupted"), "recovery's TurnInterrupted")
    for (const e of seen) expect(b.events[e.seq - 1]).toEqual(e)
    expect(Math.max(...acked)).toBeLessThanOrEqual(b.events.length)
    const interrupted = b.events.find((e) => e.type === "TurnInterrupted")
    expect(interrupted?.type === "TurnInterrupted" && interrupted.reason).toBe("restart")
    expect(gapless(b.events)).toBe(true)
    expect((await b.command({ type: "send_message", text: "again" })).type).toBe("ack")
    await b.until(() => b.events.filter((e) => e.type === "TurnCompleted").length === 1, "the next turn completes")
    b.close()
  })
})

describe("bad input", () => {
  test("10,000 random and malformed frames each get an error, and the server keeps serving", async () => {
    const server = await start({})
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    const samples: Array<string> = [
      "not json",
      "{",
      "[]",
      "null",
      "42",
      JSON.stringify({ type: "nope" }),
      JSON.stringify({ type: "hello" }),
      JSON.stringify({ type: "hello", session: 12 }),
      JSON.stringify({ type: "command", id: "x", session }),
      JSON.stringify({ type: "command", id: "x", session, command: { type: "approve" } }),
      JSON.stringify({ type: "command", session, command: { type: "send_message", text: "hi" } }),
      JSON.stringify({ type: "command", id: "", session, command: { type: "interrupt" } }),
      JSON.stringify({ type: "hello", session: "s".repeat(300), after: 0 }),
      JSON.stringify({ type: "hello", session: null, after: -1 }),
      JSON.stringify({ type: "command", id: "x", session, command: { type: "send_message", text: 5 } }),
      JSON.stringify({ type: "command", id: "x", session, command: { type: "send_message", text: "z".repeat(200_000) } })
    ]
    const N = 10_000
    const before = c.frames.length
    let rnd = 12345
    const next = () => (rnd = (rnd * 1103515245 + 12345) & 0x7fffffff)
    for (let i = 0; i < N; i++) {
      const base = samples[next() % samples.length]!
      // Random single-byte corruption keeps most frames malformed in new ways.
      const k = next() % (base.length + 1)
      c.send(next() % 3 === 0 ? base.slice(0, k) + String.fromCharCode(32 + (next() % 90)) + base.slice(k + 1) : base)
    }
    // Every frame gets exactly one answer: an error, a nack, or (for a frame the corruption left valid) an ack or welcome.
    const answers = () => c.frames.slice(before).filter((f) => f.type !== "events")
    await c.until(() => answers().length >= N, `${N} answers`, 60_000)
    expect(answers()).toHaveLength(N)
    expect(answers().filter((f) => f.type === "error").length).toBeGreaterThan(N / 2)
    // Still serving: the same connection works, and so does a new one, and nothing was appended to the session.
    expect(server.proc.exitCode).toBeNull()
    expect((await c.command({ type: "cancel_queued", messageId: "nope" })).type).toBe("nack")
    const d = await Client.connect(server.port)
    expect(await d.hello(session)).toBe(session)
    c.close()
    d.close()
  }, 90_000)

  test("unknown sessions, unknown calls and a frame over 1 MiB are refused with typed errors", async () => {
    const server = await start({})
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    const unknown = await c.command({ type: "send_message", text: "hi" }, "no-such-session")
    expect(unknown.type === "nack" && unknown.error.code).toBe("unknown_session")
    const approve = await c.command({ type: "approve", callId: "call-99" })
    expect(approve.type === "nack" && approve.error.code).toBe("unknown_call")
    const interrupt = await c.command({ type: "interrupt" })
    expect(interrupt.type === "nack" && interrupt.error.code).toBe("nothing_to_interrupt")
    const before = c.frames.length
    c.send(JSON.stringify({ type: "command", id: "big", session, command: { type: "send_message", text: "a".repeat(1_100_000) } }))
    await c.until(() => c.frames.length > before, "an answer to the big frame")
    const f = c.frames[before]!
    expect(f.type === "error" && f.code).toBe("bad_frame")
    expect(c.closed).toBeNull()
    c.close()
  })
})

describe("security", () => {
  test("a cross-origin upgrade is refused; the server's own origin and allowed origins are accepted", async () => {
    const server = await start({ TAPE_ALLOWED_ORIGINS: "http://localhost:5173" })
    const attempt = (origin: string) =>
      fetch(`http://127.0.0.1:${server.port}/ws`, {
        headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13", origin }
      }).then((r) => r.status)
    expect(await attempt("http://evil.example")).toBe(403)
    expect(await attempt(`http://127.0.0.1:${server.port}`)).toBe(101)
    expect(await attempt("http://localhost:5173")).toBe(101)
  })

  test("with a token, /api and /ws require it", async () => {
    const server = await start({ TAPE_TOKEN: "s3cret" })
    expect(server.url).toContain("token=s3cret")
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions`)).status).toBe(401)
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions?token=wrong`)).status).toBe(401)
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions`, { headers: { authorization: "Bearer s3cret" } })).status).toBe(200)
    await expect(Client.connect(server.port)).rejects.toThrow()
    const c = await Client.connect(server.port, { token: "s3cret" })
    expect(await c.hello(null)).not.toBe("")
    c.close()
  })

  test("commands beyond the rate limit are nacked, not run", async () => {
    const server = await start({ TAPE_COMMANDS_PER_SECOND: "5" })
    const c = await Client.connect(server.port)
    await c.hello(null)
    const replies = await Promise.all(Array.from({ length: 30 }, () => c.command({ type: "cancel_queued", messageId: "m" })))
    const limited = replies.filter((r) => r.type === "nack" && r.error.code === "rate_limited")
    expect(limited.length).toBeGreaterThanOrEqual(15)
    c.close()
  })
})

describe("backpressure", () => {
  test("a reader that stops reading is cut off; a fast reader of the same session gets everything", async () => {
    const server = await start({ TAPE_MAX_BUFFERED_BYTES: "1048576", TAPE_SLOW_READER_MS: "2000" })
    // A long tape (about 16 MB) so the catch-up outgrows the kernel socket buffers.
    const big = "w".repeat(20_000)
    const lines = [
      { session: "big", seq: 1, at: 1, by: "system", type: "SessionCreated" },
      { session: "big", seq: 2, at: 1, by: "user:t", type: "UserMessageAdded", messageId: "msg-2", text: "flood" },
      { session: "big", seq: 3, at: 1, by: "system", type: "TurnStarted", turnId: "turn-3", model: "scripted" },
      ...Array.from({ length: 800 }, (_, i) => ({ session: "big", seq: i + 4, at: 1, by: "model", type: "AssistantDelta", turnId: "turn-3", text: big })),
      { session: "big", seq: 804, at: 1, by: "model", type: "TurnCompleted", turnId: "turn-3" }
    ]
    const res = await fetch(`http://127.0.0.1:${server.port}/api/sessions/import`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: lines.map((l) => JSON.stringify(l)).join("\n")
    })
    expect(res.status).toBe(201)
    const { session } = (await res.json()) as { session: string }
    // A raw socket that completes the handshake, says hello, and then never reads again.
    const slow = connect(server.port, "127.0.0.1")
    await new Promise<void>((res) => slow.on("connect", () => res()))
    slow.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
    await new Promise<void>((res) => slow.once("data", () => res()))
    slow.pause()
    const payload = Buffer.from(JSON.stringify({ type: "hello", session, after: 0 }))
    const mask = Buffer.from([1, 2, 3, 4])
    slow.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]))
    const fast = await Client.connect(server.port)
    await fast.hello(session)
    await fast.until(() => fast.has((e) => e.type === "TurnCompleted"), "the whole tape on the fast reader", 60_000)
    expect(fast.events).toHaveLength(804)
    await fast.until(() => /slow reader/.test(server.output()), "the server to cut off the slow reader", 30_000)
    // The server goes on: a new client still gets served.
    const again = await Client.connect(server.port)
    expect(await again.hello(null)).not.toBe("")
    slow.destroy()
    fast.close()
    again.close()
  }, 90_000)
})

describe("fork and import", () => {
  test("fork at a seq mid-stream gives a usable prefix tape; export then import folds to the same projections", async () => {
    const dir = tempDir("fork")
    const script = writeScript(dir, {
      turns: [{ text: "abcdefghijklmnopqrstuvwxyz", chunkChars: 2, delayMs: 1 }, { text: "fork reply" }]
    })
    const server = await start({ LLM_SCRIPT: script })
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    await c.command({ type: "send_message", text: "alphabet" })
    await c.until(() => c.has((e) => e.type === "TurnCompleted"), "the reply")
    const tape = await exportTape(server.port, session)
    // At the first delta the turn is still streaming: the fork must close it.
    const at = tape.find((e) => e.type === "AssistantDelta")!.seq
    const res = await fetch(`http://127.0.0.1:${server.port}/api/sessions/${session}/fork`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ seq: at })
    })
    expect(res.status, await res.clone().text()).toBe(201)
    const { session: forked } = (await res.json()) as { session: string }
    const forkTape = await exportTape(server.port, forked)
    expect(forkTape.slice(0, at).map((e) => e.type)).toEqual(tape.slice(0, at).map((e) => e.type))
    expect(forkTape.slice(at).map((e) => e.type)).toEqual(["TurnInterrupted"])
    const folded = uiView(fold(forked, forkTape))
    expect(folded.phase).toBe("idle")
    expect(forkTape[0]!.type === "SessionCreated" && forkTape[0]!.forkedFrom).toEqual({ session, seq: at })

    const imported = await fetch(`http://127.0.0.1:${server.port}/api/sessions/import`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: tape.map((e) => JSON.stringify(e)).join("\n")
    })
    expect(imported.status).toBe(201)
    const { session: copy } = (await imported.json()) as { session: string }
    const copyTape = await exportTape(server.port, copy)
    expect(memorySnapshot(fold(copy, copyTape))).toEqual(memorySnapshot(fold(session, tape)))
    const bad = await fetch(`http://127.0.0.1:${server.port}/api/sessions/import`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: '{"nope":1}\n'
    })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { message: string } }).error.message).toContain("line 1")
    c.close()
  })
})

describe("graceful shutdown", () => {
  test("SIGTERM mid-stream closes sockets with a reason and records the turn as interrupted (reason shutdown)", async () => {
    const dir = tempDir("term")
    const script = writeScript(dir, { turns: [{ text: "z".repeat(3000), chunkChars: 2, delayMs: 2 }, { text: "after" }] })
    const env = { LLM_SCRIPT: script, TAPE_STORE: "sqlite", TAPE_DATA: dir }
    const first = await start(env)
    const a = await Client.connect(first.port)
    const session = await a.hello(null)
    await a.command({ type: "send_message", text: "stream" })
    await a.until(() => a.has((e) => e.type === "AssistantDelta"), "a delta")
    expect(await first.stop("SIGTERM")).toBe(0)
    await a.until(() => a.closed !== null, "the socket to close")
    expect(a.closed).toEqual({ code: 1001, reason: "server shutting down" })
    const second = await start(env)
    const tape = await exportTape(second.port, session)
    const interrupted = tape.find((e) => e.type === "TurnInterrupted")
    expect(interrupted?.type === "TurnInterrupted" && interrupted.reason).toBe("shutdown")
    expect(gapless(tape)).toBe(true)
  })
})
