/**
 * The browser's folding and time travel, on real envelopes (decoded with the shared schema) folded by the shared
 * reducers: the client tape, render snapshots, rewinding to any seq, diffs, the timeline filter and the flow paths.
 */
import { describe, expect, test } from "bun:test"
import { decodeEnvelopeSync, type Envelope } from "../src/domain/Event.ts"
import { memorySnapshot } from "../src/domain/projections/memory.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import { fold } from "../src/domain/state.ts"
import { decodeServerFrame } from "../src/server/Protocol.ts"
import { parseArgs } from "../web/src/lib/args.ts"
import { api, ApiError, endpointOf, socketUrl } from "../web/src/lib/api.ts"
import { ChatBuilder } from "../web/src/lib/chatView.ts"
import { actorKind, describeEvent } from "../web/src/lib/describe.ts"
import { FilterIndex } from "../web/src/lib/filter.ts"
import { pathOf, emptyPulse, pulseOf } from "../web/src/lib/flow.ts"
import { escapeHtml, highlightJs, highlightJson } from "../web/src/lib/highlight.ts"
import { CHECKPOINT_EVERY, diff, inspect, projectionsOf, Rewinder } from "../web/src/lib/rewind.ts"
import { TapeLog } from "../web/src/lib/tapeLog.ts"

const S = "s1"
const tapeOf = (drafts: ReadonlyArray<Record<string, unknown>>): Array<Envelope> =>
  drafts.map((d, i) => decodeEnvelopeSync({ session: S, seq: i + 1, at: 1_000 + i, by: "system", ...d }))

/** A session: a question, a streamed reply with an eval call, approval, result, and the answer. */
const tape = tapeOf([
  { type: "SessionCreated", title: "Demo" },
  { type: "UserMessageAdded", by: "user:c1", messageId: "msg-2", text: "What is 17 * 23?" },
  { type: "TurnStarted", turnId: "turn-3", model: "scripted" },
  { type: "AssistantDelta", by: "model", turnId: "turn-3", text: "Let me " },
  { type: "AssistantDelta", by: "model", turnId: "turn-3", text: "compute." },
  { type: "ToolCallRequested", by: "model", turnId: "turn-3", callId: "call-6", tool: "eval", args: { code: "17 * 23" } },
  { type: "TurnCompleted", by: "model", turnId: "turn-3" },
  { type: "ToolCallApproved", by: "user:c1", callId: "call-6" },
  { type: "ToolExecutionStarted", by: "tool", callId: "call-6" },
  { type: "ToolExecutionSucceeded", by: "tool", callId: "call-6", output: "391" },
  { type: "TurnStarted", turnId: "turn-11", model: "scripted" },
  { type: "AssistantDelta", by: "model", turnId: "turn-11", text: "It is 391." },
  { type: "TurnCompleted", by: "model", turnId: "turn-11" }
])

describe("TapeLog", () => {
  test("folds batches in order with the shared reducers; repeats are skipped", () => {
    const log = new TapeLog()
    log.reset(S)
    expect(log.append(tape.slice(0, 5))).toEqual({ added: 5, gapAfter: null })
    expect(log.append(tape.slice(3, 9))).toEqual({ added: 4, gapAfter: null })
    expect(log.append(tape.slice(9))).toEqual({ added: 4, gapAfter: null })
    expect(log.head).toBe(13)
    expect(memorySnapshot(log.state)).toEqual(memorySnapshot(fold(S, tape)))
    expect(summaryView(log.state)).toEqual(summaryView(fold(S, tape)))
  })

  test("a gap stops the batch and names the head to resync from", () => {
    const log = new TapeLog()
    log.reset(S)
    log.append(tape.slice(0, 3))
    expect(log.append(tape.slice(4, 6))).toEqual({ added: 0, gapAfter: 3 })
    expect(log.head).toBe(3)
  })
})

describe("ChatBuilder", () => {
  test("copies only what changed: unchanged entries keep their identity", () => {
    const log = new TapeLog()
    log.reset(S)
    const builder = new ChatBuilder()
    log.append(tape.slice(0, 4))
    const a = builder.build(log.state)
    log.append(tape.slice(4, 5))
    const b = builder.build(log.state)
    expect(b.entries[0]).toBe(a.entries[0])
    expect(b.entries[1]).not.toBe(a.entries[1])
    expect(b.entries[1]).toMatchObject({ kind: "assistant", text: "Let me compute.", status: "streaming" })
    expect(a.entries[1]).toMatchObject({ text: "Let me " })
    log.append(tape.slice(5, 7))
    const c = builder.build(log.state)
    expect(c.pendingApprovals.map((p) => p.callId)).toEqual(["call-6"])
    expect(c.entries[2]).toMatchObject({ kind: "tool_call", call: { status: "pending", tool: "eval" } })
    log.append(tape.slice(7))
    const d = builder.build(log.state)
    expect(d.entries[2]).toMatchObject({ kind: "tool_call", call: { status: "succeeded", output: "391" } })
    expect(c.entries[2]).toMatchObject({ call: { status: "pending" } })
    expect(d.phase).toBe("idle")
    expect(d.actions.canInterrupt).toBe(false)
  })
})

describe("time travel", () => {
  test("the state at every seq equals a fresh fold of the prefix, moving forward and back", () => {
    const r = new Rewinder(S)
    for (const seq of [13, 2, 7, 7, 12, 1, 0, 13, 5]) {
      expect(projectionsOf(r.stateAt(tape, seq))).toEqual(projectionsOf(fold(S, tape, seq)))
    }
  })

  test("rewinds across checkpoints of a long tape", () => {
    const n = CHECKPOINT_EVERY * 2 + 500
    const long = tapeOf([
      { type: "SessionCreated" },
      { type: "UserMessageAdded", by: "user:c1", messageId: "msg-2", text: "go" },
      { type: "TurnStarted", turnId: "turn-3", model: "m" },
      ...Array.from({ length: n - 3 }, (_, i) => ({ type: "AssistantDelta", by: "model", turnId: "turn-3", text: `${i} ` }))
    ])
    const r = new Rewinder(S)
    r.stateAt(long, n)
    for (const seq of [CHECKPOINT_EVERY * 2 + 10, CHECKPOINT_EVERY + 1, CHECKPOINT_EVERY - 1, n]) {
      expect(memorySnapshot(r.stateAt(long, seq))).toEqual(memorySnapshot(fold(S, long, seq)))
    }
  })

  test("inspect shows the projections at a seq and the change its event made", () => {
    const r = new Rewinder(S)
    const delta = inspect(r, tape, 5)
    expect(delta?.event.type).toBe("AssistantDelta")
    expect(delta?.changes).toContainEqual({ path: "memory.messages.1.text", kind: "appended", before: "Let me ", after: "compute." })
    const turn = inspect(r, tape, 11)
    expect(turn?.at.memory.messages.map((m) => m.role)).toEqual(["user", "assistant", "assistant"])
    expect(turn?.changes.some((c) => c.path === "ui.phase" && c.before === "idle" && c.after === "streaming")).toBe(true)
    const approved = inspect(r, tape, 8)
    expect(approved?.changes).toContainEqual({ path: "summary.pendingApprovals", kind: "changed", before: 1, after: 0 })
    expect(inspect(r, tape, 99)).toBeNull()
  })

  test("diff reports added, removed, changed and appended values", () => {
    expect(diff({ a: [1], b: "x", c: 1 }, { a: [1, 2], b: "xy", d: true })).toEqual([
      { path: "a.1", kind: "added", after: 2 },
      { path: "b", kind: "appended", before: "x", after: "y" },
      { path: "c", kind: "removed", before: 1 },
      { path: "d", kind: "added", after: true }
    ])
    expect(diff({ n: 1 }, { n: 2 })).toEqual([{ path: "n", kind: "changed", before: 1, after: 2 }])
  })
})

describe("timeline filter", () => {
  test("filters by type and actor, incrementally", () => {
    const f = new FilterIndex()
    expect(f.sync(tape.slice(0, 6), { type: "AssistantDelta", actor: "" })).toBe(2)
    expect(f.sync(tape, { type: "AssistantDelta", actor: "" })).toBe(3)
    expect([0, 1, 2].map((r) => tape[f.at(r)]?.seq)).toEqual([4, 5, 12])
    expect(f.sync(tape, { type: "", actor: "user" })).toBe(2)
    expect(f.rowOf(5)).toBe(1)
    expect(f.sync(tape, { type: "", actor: "" })).toBe(13)
    expect(f.at(4)).toBe(4)
  })
})

describe("flow", () => {
  test("each event lights its path from its source, and the runners that react to it", () => {
    const [, user, started, delta, , , , approved, , result] = tape
    if (!user || !started || !delta || !approved || !result) throw new Error("tape too short")
    expect(pathOf(user)).toEqual(["clients-writer", "writer-store", "store-bus", "bus-reducers", "reducers-clients"])
    expect(pathOf(started)).toContain("bus-llm")
    expect(pathOf(delta)[0]).toBe("llm-writer")
    expect(pathOf(approved)).toContain("bus-tools")
    expect(pathOf(result)[0]).toBe("tools-writer")
    const p = pulseOf(emptyPulse, tape)
    expect(p.n).toBe(1)
    expect(p.count).toBe(13)
    expect([...p.nodes].sort()).toEqual(["bus", "clients", "llm", "reducers", "store", "tools", "writer"])
    expect(pulseOf(p, [delta]).edges.has("clients-writer")).toBe(false)
  })
})

describe("formatting", () => {
  test("every event has a one-line summary", () => {
    for (const e of tape) expect(describeEvent(e).length).toBeGreaterThan(0)
    expect(describeEvent(tape[1] ?? tape[0]!)).toBe("“What is 17 * 23?”")
    expect(actorKind("user:c1")).toBe("user")
    expect(actorKind("model")).toBe("model")
  })

  test("highlighting escapes everything it is given", () => {
    const html = highlightJson({ code: "<script>alert(1)</script>", n: 2, ok: true })
    expect(html).not.toContain("<script>")
    expect(html).toContain('<span class="tok-key">&quot;code&quot;</span>')
    expect(html).toContain('<span class="tok-num">2</span>')
    const js = highlightJs("const x = '<b>' // </pre>")
    expect(js).toContain('<span class="tok-kw">const</span>')
    expect(js).not.toContain("<b>")
    expect(js).not.toContain("</pre>")
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
  })

  test("edited args must be a JSON object", () => {
    expect(parseArgs('{"code": "6 * 7"}')).toEqual({ ok: true, args: { code: "6 * 7" } })
    expect(parseArgs("[1]")).toMatchObject({ ok: false })
    expect(parseArgs('{"code": ')).toMatchObject({ ok: false, error: expect.stringContaining("Not valid JSON") })
  })
})

describe("api", () => {
  test("the token from the page URL goes on the websocket URL and as a bearer header", async () => {
    const ep = endpointOf("https://tape.example:8443/?token=s3cret#session=x")
    expect(socketUrl(ep)).toBe("wss://tape.example:8443/ws?token=s3cret")
    expect(socketUrl(endpointOf("http://127.0.0.1:3457/"))).toBe("ws://127.0.0.1:3457/ws")
    const seen: Array<[string, string | null]> = []
    const fake = async (url: string, init?: RequestInit) => {
      seen.push([url, new Headers(init?.headers).get("authorization")])
      return url.endsWith("/fork")
        ? new Response(JSON.stringify({ error: { code: "bad_seq", message: "seq 99 is past the head" } }), { status: 400 })
        : new Response(JSON.stringify({ session: "new-1" }), { status: 201 })
    }
    const http = api(ep, fake)
    expect(await http.create()).toBe("new-1")
    const failure = await http.fork("s1", 99).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(ApiError)
    expect(failure).toMatchObject({ code: "bad_seq", status: 400 })
    expect(seen).toEqual([
      ["https://tape.example:8443/api/sessions", "Bearer s3cret"],
      ["https://tape.example:8443/api/sessions/s1/fork", "Bearer s3cret"]
    ])
  })
})

describe("scale", () => {
  test("100,000 events decode with the shared schema and fold on the client in reasonable time", () => {
    const n = 100_000
    const events = [
      { session: S, seq: 1, at: 1, by: "system", type: "SessionCreated" },
      { session: S, seq: 2, at: 2, by: "user:c1", type: "UserMessageAdded", messageId: "msg-2", text: "go" },
      { session: S, seq: 3, at: 3, by: "system", type: "TurnStarted", turnId: "turn-3", model: "m" },
      ...Array.from({ length: n - 3 }, (_, i) => ({ session: S, seq: i + 4, at: i + 4, by: "model", type: "AssistantDelta", turnId: "turn-3", text: "abcd" }))
    ]
    const t0 = performance.now()
    const frame = decodeServerFrame(JSON.stringify({ type: "events", session: S, events }))
    const t1 = performance.now()
    if (frame._tag !== "Right" || frame.right.type !== "events") throw new Error("did not decode")
    const log = new TapeLog()
    log.reset(S)
    log.append(frame.right.events)
    const t2 = performance.now()
    new ChatBuilder().build(log.state)
    const f = new FilterIndex()
    f.sync(log.events, { type: "AssistantDelta", actor: "model" })
    const t3 = performance.now()
    expect(log.head).toBe(n)
    // Generous bounds: they catch an accidental O(n²), not a slow machine.
    expect(t1 - t0).toBeLessThan(10_000)
    expect(t2 - t1).toBeLessThan(2_000)
    expect(t3 - t2).toBeLessThan(1_000)
  })
})
