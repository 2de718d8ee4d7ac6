// Issue 10, "done when": 10,000 random hostile websocket frames and HTTP requests (fast-check arbitraries, seeded:
// the seed is printed, FUZZ_SEED=<n> replays a run) mixed with normal traffic against one server process. Afterwards
// the server still answers, every hostile frame got exactly one answer and every request one below 500, every valid
// command of the normal client was acked, and every acknowledged event is on its session's exported tape.
import { expect, test } from "bun:test"
import fc from "fast-check"
import { Client, exportTape } from "./support/server.ts"
import { useServers } from "./support/servers.ts"

const start = useServers()

const TOTAL = 10_000
/** One normal command after this many hostile inputs. */
const NORMAL_EVERY = 40
/** Hostile frames sent but not answered yet, at most (keeps the run's memory and the server's queue bounded). */
const MAX_IN_FLIGHT = 200
const HTTP_CONCURRENCY = 4
/** The run must end within this (it takes well under half of it on two cores); past it the test fails. */
const DEADLINE_MS = 150_000

type Input =
  | { readonly kind: "frame"; readonly text: string }
  | { readonly kind: "binary"; readonly bytes: Uint8Array }
  | { readonly kind: "http"; readonly method: string; readonly path: string; readonly headers: Record<string, string>; readonly body: string | null }

const nest = (depth: number, open: string, close: string, inner = "1") => open.repeat(depth) + inner + close.repeat(depth)

/** Arbitraries of hostile inputs; `session` is a real session id (the normal client's), so some commands reach it. */
const hostile = (session: string, port: number): fc.Arbitrary<Input> => {
  const id = fc.oneof(fc.constant(session), fc.constant("call-5"), fc.constant(""), fc.string({ maxLength: 300 }), fc.integer(), fc.constant(null))
  const anything = fc.oneof({ weight: 3, arbitrary: fc.jsonValue({ maxDepth: 6 }) }, id, fc.string({ unit: "binary", maxLength: 50 }))
  const command = fc.record(
    {
      type: fc.constantFrom("send_message", "approve", "reject", "interrupt", "cancel_queued", "retry_turn", "rename", "create", "close_open", "bogus"),
      text: fc.oneof(fc.string({ maxLength: 40 }), fc.constant("1+1"), anything),
      mode: fc.constantFrom("queue", "interrupt", "nope"),
      callId: id,
      messageId: id,
      turnId: id,
      args: anything,
      reason: anything
    },
    { requiredKeys: ["type"] }
  )
  const frame = fc.record(
    {
      type: fc.constantFrom("hello", "command", "welcome", "ack", "nope"),
      session: id,
      after: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER)),
      id,
      command: fc.oneof({ weight: 4, arbitrary: command }, anything)
    },
    { requiredKeys: ["type"] }
  )
  const corrupt = (text: string) =>
    fc.tuple(fc.nat(text.length), fc.constantFrom("truncate", "char", "number", "dup")).map(([at, how]) => {
      switch (how) {
        case "truncate":
          return text.slice(0, at)
        case "char":
          return text.slice(0, at) + String.fromCharCode(32 + (at % 90)) + text.slice(at + 1)
        case "number":
          return text.replace(/\d+/, "1e309")
        case "dup":
          return text.slice(0, at) + text.slice(at) + text.slice(at)
      }
    })
  const bomb = fc.tuple(fc.integer({ min: 60, max: 60_000 }), fc.constantFrom("[]", "{}", "open")).map(([d, shape]) =>
    shape === "[]"
      ? `{"type":"hello","session":${nest(d, "[", "]")}}`
      : shape === "{}"
        ? `{"type":"command","id":"b","session":"${session}","command":{"type":"approve","callId":"c","args":${nest(d, '{"a":', "}")}}}`
        : `{"type":"hello","session":${"[".repeat(d)}`
  )
  const frameText = fc.oneof(
    { weight: 6, arbitrary: frame.map((f) => JSON.stringify(f)) },
    { weight: 3, arbitrary: frame.chain((f) => corrupt(JSON.stringify(f))) },
    { weight: 2, arbitrary: bomb },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? "null") },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
    { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 1_100_000 }).map((n) => `{"type":"command","id":"h","session":"${session}","command":{"type":"send_message","text":"${"x".repeat(n)}"}}`) }
  )
  const printable = fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, "_"))
  const route = fc.oneof(
    fc.constantFrom("/api/sessions", "/api/sessions/import", "/api/info", "/healthz", "/", "/ws", "/index.html", "/api"),
    fc.constantFrom(`/api/sessions/${session}/events`, `/api/sessions/${session}/fork`, "/api/sessions/nope/fork", "/api/sessions/nope/events"),
    fc.constantFrom("/%", "/%00", "/%E0%A4%A", "/api/sessions/%E0%A4%A/events", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd"),
    printable.map((s) => `/${encodeURI(s)}`),
    printable.map((s) => `/api/sessions/${encodeURIComponent(s)}/fork`)
  )
  const query = fc.oneof(
    fc.constant(""),
    fc.record({ limit: fc.oneof(fc.nat(300).map(String), printable, fc.constant("1e309")), before: printable, q: printable, after: fc.oneof(fc.integer().map(String), printable) }, { requiredKeys: [] })
      .map((q) => `?${new URLSearchParams(q).toString()}`)
  )
  const envelope = fc.record(
    {
      session: fc.constantFrom("t", session),
      seq: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(1e309)),
      at: fc.oneof(fc.nat(), fc.double()),
      by: fc.constantFrom("system", "user:x", "model", "tool", "policy:admin", "nobody"),
      type: fc.constantFrom("SessionCreated", "UserMessageAdded", "ToolCallApproved", "ToolExecutionSucceeded", "TurnStarted", "Nope"),
      title: anything,
      text: anything,
      messageId: id,
      callId: id,
      turnId: id,
      model: fc.string(),
      output: anything
    },
    { requiredKeys: ["type"] }
  )
  const body = fc.oneof(
    fc.constant(""),
    fc.jsonValue().map((v) => JSON.stringify(v) ?? ""),
    fc.record({ title: anything, seq: anything }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
    fc.array(envelope, { maxLength: 5 }).map((es) => es.map((e) => JSON.stringify(e)).join("\n")),
    fc.array(envelope, { maxLength: 3 }).chain((es) => corrupt(es.map((e) => JSON.stringify(e)).join("\n"))),
    bomb,
    fc.string({ unit: "binary", maxLength: 300 })
  )
  const own = `127.0.0.1:${port}`
  const request = fc
    .record({
      method: fc.constantFrom("GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"),
      path: route,
      query,
      contentType: fc.constantFrom(undefined, "application/json", "application/x-ndjson", "application/jsonl", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1"),
      origin: fc.constantFrom(undefined, undefined, `http://${own}`, "http://evil.example", "null", `http://localhost:${port}`, "file://"),
      host: fc.constantFrom(own, own, own, `localhost:${port}`, `evil.example:${port}`, "127.0.0.1.evil.example"),
      body
    })
    .map(({ method, path, query, contentType, origin, host, body }): Input => ({
      kind: "http",
      method,
      path: path + query,
      headers: { host, ...(contentType ? { "content-type": contentType } : {}), ...(origin ? { origin } : {}) },
      body: method === "GET" || method === "HEAD" ? null : body
    }))
  return fc.oneof(
    { weight: 65, arbitrary: frameText.map((text): Input => ({ kind: "frame", text })) },
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 100 }).map((bytes): Input => ({ kind: "binary", bytes })) },
    { weight: 32, arbitrary: request }
  )
}

test(`${TOTAL} hostile frames and requests mixed with normal traffic: the server answers all and loses no acknowledged event`, async () => {
  const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
  console.log(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`)
  const deadline = Date.now() + DEADLINE_MS
  const server = await start({ TAPE_COMMANDS_PER_SECOND: "1000" })
  const base = `http://127.0.0.1:${server.port}`
  const normal = await Client.connect(server.port)
  const session = await normal.hello(null)
  const attacker = await Client.connect(server.port)
  await attacker.hello(null)
  const inputs = fc.sample(hostile(session, server.port), { seed, numRuns: TOTAL })

  // What the attacker's valid commands were sent to, by id, to check its acks against the tapes too.
  const sentTo = new Map<string, Set<string>>()
  const remember = (text: string) => {
    try {
      const f: unknown = JSON.parse(text)
      if (typeof f === "object" && f !== null && "type" in f && f.type === "command" && "id" in f && typeof f.id === "string" && "session" in f && typeof f.session === "string") {
        sentTo.set(f.id, (sentTo.get(f.id) ?? new Set()).add(f.session))
      }
    } catch {
      // Not JSON: the server must say so; nothing to remember.
    }
  }
  const answered = () => attacker.frames.filter((f) => f.type !== "events").length
  let framesSent = 1
  const httpFailures: Array<string> = []
  const httpInFlight = new Set<Promise<void>>()
  const normalReplies: Array<Promise<{ readonly text: string; readonly reply: Awaited<ReturnType<Client["command"]>> }>> = []
  /** /healthz asked while the flood is on (the answer a load balancer would get). */
  const health: Array<Promise<number | string>> = []

  for (let i = 0; i < inputs.length; i++) {
    if (Date.now() > deadline) throw new Error(`fuzz run over ${DEADLINE_MS} ms at input ${i} (seed ${seed})`)
    const input = inputs[i]!
    switch (input.kind) {
      case "frame":
      case "binary":
        if (framesSent - answered() >= MAX_IN_FLIGHT) await attacker.until(() => framesSent - answered() < MAX_IN_FLIGHT / 2, "the server to catch up", 60_000)
        if (input.kind === "frame") {
          remember(input.text)
          attacker.ws.send(input.text)
        } else attacker.ws.send(input.bytes)
        framesSent++
        break
      case "http": {
        if (httpInFlight.size >= HTTP_CONCURRENCY) await Promise.race(httpInFlight)
        const done: Promise<void> = fetch(`${base}${input.path}`, { method: input.method, headers: input.headers, ...(input.body !== null ? { body: input.body } : {}) })
          .then(async (res) => {
            await res.arrayBuffer()
            if (res.status >= 500) httpFailures.push(`${res.status} for ${JSON.stringify(input).slice(0, 300)}`)
          }, (e: unknown) => {
            httpFailures.push(`no answer (${String(e).slice(0, 100)}) for ${JSON.stringify(input).slice(0, 300)}`)
          })
          .finally(() => httpInFlight.delete(done))
        httpInFlight.add(done)
        break
      }
      default: {
        const _exhaustive: never = input
        return _exhaustive
      }
    }
    if (i % NORMAL_EVERY === 0) {
      const text = `note ${i}`
      normalReplies.push(normal.command({ type: "send_message", text }).then((reply) => ({ text, reply })))
      health.push(fetch(`${base}/healthz`).then((res) => res.status, (e: unknown) => `no answer: ${String(e).slice(0, 100)}`))
    }
  }
  await Promise.all(httpInFlight)
  await attacker.until(() => answered() >= framesSent, `answers to all ${framesSent} hostile frames`, 60_000)
  const replies = await Promise.all(normalReplies)

  // The server still answers, on old connections and new ones.
  expect(server.proc.exitCode).toBeNull()
  expect((await fetch(`${base}/healthz`)).status).toBe(200)
  // …and answered its health check all along.
  const healthAnswers = await Promise.all(health)
  expect(healthAnswers.length).toBeGreaterThan(10)
  expect(healthAnswers.filter((a) => a !== 200)).toEqual([])
  const late = await Client.connect(server.port)
  expect(await late.hello(session)).toBe(session)
  expect(httpFailures).toEqual([])
  // Exactly one answer per hostile frame (the hello at the start included).
  expect(answered()).toBe(framesSent)
  // Every normal command was acked, and every acked event is on the exported tape, gapless.
  expect(replies.filter((r) => r.reply.type !== "ack")).toEqual([])
  const tape = await exportTape(server.port, session)
  expect(tape.every((e, k) => e.seq === k + 1)).toBe(true)
  for (const { text, reply } of replies) {
    if (reply.type !== "ack") continue
    expect(tape.length).toBeGreaterThanOrEqual(reply.seq)
    expect(tape.some((e) => (e.type === "UserMessageAdded" || e.type === "UserMessageQueued") && e.text === text)).toBe(true)
  }
  // The attacker's acks too: each acknowledged head is on the tape of the one session its id was sent to.
  const heads = new Map<string, number>()
  for (const f of attacker.frames) {
    if (f.type !== "ack") continue
    const to = sentTo.get(f.id)
    if (to === undefined || to.size !== 1) continue
    const target = [...to][0]!
    heads.set(target, Math.max(heads.get(target) ?? 0, f.seq))
  }
  for (const [target, head] of heads) expect((await exportTape(server.port, target)).length).toBeGreaterThanOrEqual(head)
  console.log(`fuzz seed ${seed}: ${framesSent} frames, ${inputs.filter((x) => x.kind === "http").length} requests, ${replies.length} normal commands, ${heads.size} sessions acked by the attacker`)
  normal.close()
  attacker.close()
  late.close()
}, 240_000)
