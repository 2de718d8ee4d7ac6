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
import { activityOf, RateMeter } from "../web/src/lib/activity.ts"
import { actorClass, actorLabel } from "../web/src/lib/actors.ts"
import { describeEvent, formatDuration, modelLabel, plural } from "../web/src/lib/describe.ts"
import { humanError, humanSchemaError } from "../web/src/lib/errors.ts"
import { pathOf, emptyPulse, pulseOf } from "../web/src/lib/flow.ts"
import { escapeHtml, highlightCode, highlightJs, highlightJson, languageName } from "../web/src/lib/highlight.ts"
import { noFilter, TimelineIndex, type TimelineView } from "../web/src/lib/timeline.ts"
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

const viewOf = (over: Partial<TimelineView> = {}): TimelineView => ({
  filter: noFilter,
  classify: (by) => actorClass(by, new Set(["user:c1"])),
  collapsed: new Set(),
  expanded: new Set(),
  ...over
})
const rowsOf = (ix: TimelineIndex, n: number) =>
  Array.from({ length: n }, (_, i) => {
    const r = ix.row(i)
    return r?.kind === "event" ? `${tape[r.pos]?.seq}` : `${r?.kind}:${r?.turnId}`
  })

describe("timeline by turn", () => {
  test("each turn gets a header, its deltas fold into one row, its calls' events sit under it", () => {
    const ix = new TimelineIndex()
    const view = viewOf()
    const n = ix.sync(tape, view, 0)
    expect(rowsOf(ix, n)).toEqual(["1", "2", "turn:turn-3", "3", "deltas:turn-3", "6", "7", "8", "9", "10", "turn:turn-11", "11", "deltas:turn-11", "13"])
    expect(ix.matched).toBe(13)
    expect(ix.turn("turn-3")).toMatchObject({ n: 1, deltas: 2, chars: "Let me compute.".length, status: "completed", calls: 1 })
    expect(ix.turnOf(tape[9]!)).toBe("turn-3")
    // A folded delta is found at its turn's deltas row; an event at its own row.
    expect(ix.rowOf(tape, 4)).toBe(4)
    expect(ix.rowOf(tape, 9)).toBe(9)
  })

  test("grows incrementally, and rebuilds when deltas are expanded or a turn is collapsed", () => {
    const ix = new TimelineIndex()
    const view = viewOf()
    ix.sync(tape.slice(0, 4), view, 0)
    const n = ix.sync(tape, view, 0)
    expect(n).toBe(14)
    const open = viewOf({ expanded: new Set(["turn-3"]) })
    expect(rowsOf(ix, ix.sync(tape, open, 0)).slice(2, 8)).toEqual(["turn:turn-3", "3", "deltas:turn-3", "4", "5", "6"])
    const shut = viewOf({ collapsed: new Set(["turn-3"]) })
    expect(rowsOf(ix, ix.sync(tape, shut, 0))).toEqual(["1", "2", "turn:turn-3", "turn:turn-11", "11", "deltas:turn-11", "13"])
    expect(ix.rowOf(tape, 8)).toBe(2)
  })

  test("filters include and exclude by type and by who: you, another client, the model…", () => {
    const ix = new TimelineIndex()
    const only = viewOf({ filter: { types: new Map([["AssistantDelta", "include"], ["ToolCallRequested", "include"]]), actors: new Map() } })
    ix.sync(tape, only, 0)
    expect(ix.matched).toBe(4)
    const notModel = viewOf({ filter: { types: new Map(), actors: new Map([["model", "exclude"]]) } })
    ix.sync(tape, notModel, 0)
    expect(ix.matched).toBe(13 - 6)
    const you = viewOf({ filter: { types: new Map(), actors: new Map([["you", "include"]]) } })
    ix.sync(tape, you, 0)
    expect(ix.matched).toBe(2)
    const other = viewOf({ filter: { types: new Map(), actors: new Map([["other", "include"]]) }, classify: (by) => actorClass(by, new Set()) })
    ix.sync(tape, other, 0)
    expect(ix.matched).toBe(2)
    // A new epoch (the tape was replaced) starts over even when it is as long.
    ix.sync(tape, other, 1)
    expect(ix.matched).toBe(2)
  })
})

describe("actors, wording, errors", () => {
  test("actors in words; you are the ids this tab learned", () => {
    const me = new Set(["user:a-1"])
    expect(actorLabel("user:a-1", me)).toBe("you")
    expect(actorLabel("user:b-7", me)).toBe("another tab/client")
    expect(actorLabel("policy:auto", me)).toBe("policy: auto")
    expect(actorLabel("model", me)).toBe("the model")
    expect(actorLabel("system", me)).toBe("system")
    expect(plural(1, "event")).toBe("1 event")
    expect(plural(2, "event")).toBe("2 events")
    expect(plural(1_000, "event")).toBe("1,000 events")
    expect(modelLabel("offline")).toBe("built-in model")
    expect(formatDuration(2_140)).toBe("2.1 s")
  })

  test("server errors are worded for people, schema errors become path: problem", () => {
    expect(humanSchemaError("code: expected string")).toBe("code: should be text")
    expect(humanError("invalid_args", "edited args for eval are invalid: invalid args for eval: code: expected string")).toBe(
      "The edited arguments do not fit the tool: code: should be text."
    )
    expect(humanSchemaError("extra: is unexpected; code: is missing")).toBe("extra: is not one of its arguments; code: is missing (it is required)")
    expect(humanSchemaError("h.a: expected number")).toBe("h.a: should be a number")
    expect(humanSchemaError("plain words")).toBe("plain words")
    expect(humanSchemaError("a: expected constructor")).toBe("a: should be constructor")
    expect(humanError("not_pending", "tool call call-6 is not pending (it is succeeded)")).not.toContain("not_pending")
    expect(humanError("http_502", "Bad Gateway")).toBe("The server answered with an error (HTTP 502): Bad Gateway.")
    expect(humanError("something_new", "the thing broke")).toBe("The thing broke.")
  })
})

describe("activity", () => {
  test("which runner is busy and what waits for a person, at each point of the tape", () => {
    const at = (n: number) => activityOf(fold(S, tape.slice(0, n)))
    expect(at(5).model).toEqual({ turnId: "turn-3", chars: "Let me compute.".length })
    expect(at(7)).toMatchObject({ model: null, pending: [{ callId: "call-6", tool: "eval" }], tools: [] })
    expect(at(8).tools).toEqual([{ callId: "call-6", tool: "eval", running: false }])
    expect(at(9).tools).toEqual([{ callId: "call-6", tool: "eval", running: true }])
    expect(at(13)).toEqual({ model: null, tools: [], pending: [], queued: 0 })
  })

  test("the rate counts arrivals in the last window only", () => {
    const r = new RateMeter(1_000)
    r.add(0, 10)
    r.add(500, 10)
    expect(r.perSecond(900)).toBe(20)
    expect(r.perSecond(1_200)).toBe(10)
    expect(r.perSecond(5_000)).toBe(0)
  })

  test("a busy period is named by the seq that began it", () => {
    const log = new TapeLog()
    log.reset(S)
    log.append(tape.slice(0, 2))
    expect(log.busySince).toBeNull()
    log.append(tape.slice(2, 9))
    expect(log.busySince).toBe(3)
    log.append(tape)
    expect(log.busySince).toBeNull()
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
    const py = highlightCode("def f():\n  return '<i>' # </pre>", "python")
    expect(py).toContain('<span class="tok-kw">def</span>')
    expect(py).toContain('<span class="tok-com"># &lt;/pre&gt;</span>')
    expect(py).not.toContain("<i>")
    expect(highlightCode("<script>", "klingon")).toBe("&lt;script&gt;")
    // The fence's word is the model's: words of Object's prototype name no grammar.
    for (const word of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      expect(highlightCode("<b>x</b>", word)).toBe("&lt;b&gt;x&lt;/b&gt;")
      expect(languageName(word)).toBe(word.toLowerCase())
    }
    expect(languageName("x".repeat(500)).length).toBe(24)
    expect(highlightCode('{"a": 1}', "json")).toContain('<span class="tok-num">1</span>')
    expect([languageName("py"), languageName(""), languageName("ts"), languageName("klingon")]).toEqual(["Python", "text", "TypeScript", "klingon"])
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
    const ix = new TimelineIndex()
    expect(ix.sync(log.events, viewOf({ filter: { types: new Map([["AssistantDelta", "include"]]), actors: new Map([["model", "include"]]) } }), 0)).toBe(2)
    expect(ix.sync(log.events, viewOf({ expanded: new Set(["turn-3"]) }), 0)).toBe(n + 2)
    const t3 = performance.now()
    expect(log.head).toBe(n)
    // Generous bounds: they catch an accidental O(n²), not a slow machine.
    expect(t1 - t0).toBeLessThan(10_000)
    expect(t2 - t1).toBeLessThan(2_000)
    expect(t3 - t2).toBeLessThan(1_000)
  })
})
