/**
 * The visualizer's pure parts behind the server features' UI: the schema check of edited args, the branches of a
 * message (fork points, roots, hostile fork chains), a provider's request body read for people, when Retry is
 * offered (on real envelopes folded by the shared reducers), and the new refusals in words.
 */
import { describe, expect, test } from "bun:test"
import { decodeEnvelopeSync, type Envelope } from "../src/domain/Event.ts"
import { summaryView } from "../src/domain/projections/summary.ts"
import type { SessionSummary } from "../src/domain/projections/summaryTypes.ts"
import { fold } from "../src/domain/state.ts"
import { api } from "../web/src/lib/api.ts"
import { branchRoot, branchSet, type OriginInfo } from "../web/src/lib/branches.ts"
import { ChatBuilder } from "../web/src/lib/chatView.ts"
import { sourceLabel } from "../web/src/lib/describe.ts"
import { humanError } from "../web/src/lib/errors.ts"
import { promptView } from "../web/src/lib/promptView.ts"
import { checkAgainstSchema, describeProblems } from "../web/src/lib/schemaCheck.ts"

/** eval's parameters as `/api/tools` gives them (an Effect Schema's JSON Schema). */
const evalSchema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  type: "object",
  required: ["code"],
  properties: { code: { type: "string", description: "JavaScript to run" } },
  additionalProperties: false
}

const said = (schema: unknown, value: unknown) => describeProblems(checkAgainstSchema(schema, value))

describe("edited args against the tool's JSON Schema", () => {
  test("types, required, no extra properties, in the server's words", () => {
    expect(said(evalSchema, { code: "1 + 1" })).toBe("")
    expect(said(evalSchema, { code: 5 })).toBe("code: should be text")
    expect(said(evalSchema, {})).toBe("code: is missing (it is required)")
    expect(said(evalSchema, { code: "1", extra: true })).toBe("extra: is not one of its arguments")
    expect(said(evalSchema, [])).toBe("the arguments should be an object ({ … })")
  })

  test("enum, const, integers, nullable unions, arrays and nested objects", () => {
    const schema = {
      type: "object",
      properties: {
        mode: { enum: ["read", "write"] },
        kind: { const: "note" },
        count: { type: "integer" },
        ratio: { type: "number" },
        tag: { type: ["string", "null"] },
        items: { type: "array", items: { type: "object", properties: { id: { type: "integer" } }, required: ["id"] } },
        either: { anyOf: [{ type: "string" }, { type: "boolean" }] }
      }
    }
    expect(said(schema, { mode: "read", kind: "note", count: 2, ratio: 2, tag: null, items: [{ id: 1 }], either: true })).toBe("")
    expect(said(schema, { mode: "delete" })).toBe('mode: should be one of "read", "write"')
    expect(said(schema, { kind: "other" })).toBe('kind: should be "note"')
    expect(said(schema, { count: 1.5 })).toBe("count: should be a whole number")
    expect(said(schema, { tag: 3 })).toBe("tag: should be text or null")
    expect(said(schema, { items: [{ id: 1 }, {}] })).toBe("items.1.id: is missing (it is required)")
    expect(said(schema, { either: 3 })).toBe("either: does not fit any of the forms the tool accepts")
    // Without additionalProperties: false, other keys are the tool's business.
    expect(said(schema, { other: 1 })).toBe("")
  })

  test("hostile args and schemas: inherited names (__proto__, constructor, toString) are nobody's properties", () => {
    // `__proto__` / `constructor` are not properties of a plain object: they must not read as declared or given.
    const bare = { type: "object", properties: {}, additionalProperties: false, required: ["constructor"] }
    expect(said(bare, JSON.parse('{"__proto__": {"x": 1}}'))).toBe("constructor: is missing (it is required); __proto__: is not one of its arguments")
    expect(said({ type: "object", properties: { toString: { type: "string" } } }, { toString: 5 })).toBe("toString: should be text")
  })

  test("hostile schemas and args: depth and the number of problems are bounded", () => {
    // A schema nested far deeper than the checker looks: no stack overflow, no verdict past the depth.
    let deep: Record<string, unknown> = { type: "string" }
    let value: unknown = 5
    for (let i = 0; i < 10_000; i++) {
      deep = { type: "object", properties: { a: deep } }
      value = { a: value }
    }
    expect(checkAgainstSchema(deep, value)).toEqual([])
    // A thousand wrong keys give a few problems, not a thousand.
    const many = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`k${i}`, i]))
    expect(checkAgainstSchema({ type: "object", properties: {}, additionalProperties: false }, many).length).toBe(8)
    // A pattern is the server's to match (a hostile one could backtrack for ever): the page never runs it.
    expect(checkAgainstSchema({ type: "object", properties: { s: { type: "string", pattern: "^(a+)+$" } } }, { s: `${"a".repeat(40)}!` })).toEqual([])
    // Not a schema at all: nothing is claimed.
    expect(checkAgainstSchema(null, { a: 1 })).toEqual([])
    expect(checkAgainstSchema({ type: 42, enum: "x", required: "code" }, {})).toEqual([])
  })
})

/** A session's summary row as the server would list it (folded from its first event), with `over` changed. */
const summary = (session: string, over: Partial<SessionSummary> = {}): SessionSummary => ({
  ...summaryView(fold(session, [decodeEnvelopeSync({ session, seq: 1, at: 0, by: "system", type: "SessionCreated", title: session })])),
  messages: 2,
  ...over
})

describe("branches of a message", () => {
  const known = (m: Record<string, { session: string; seq: number } | null>) => (s: string): OriginInfo | undefined =>
    s in m ? { kind: "known", origin: m[s] ?? null } : undefined

  test("a fork's own first message branches at the fork point, from the session that wrote the prefix", () => {
    // r: the original; f1 forked from r at 5 (an edit of r's message at 6); f2 forked from f1 at 3 (an edit of an earlier one).
    const origins = known({ r: null, f1: { session: "r", seq: 5 }, f2: { session: "f1", seq: 3 } })
    expect(branchRoot("f1", 5, origins)).toEqual({ kind: "root", root: "r", child: { session: "f1", seq: 5 } })
    expect(branchRoot("f2", 3, origins)).toEqual({ kind: "root", root: "r", child: { session: "f1", seq: 5 } })
    expect(branchRoot("f1", 7, origins)).toEqual({ kind: "root", root: "f1", child: null })
    expect(branchRoot("r", 5, origins)).toEqual({ kind: "root", root: "r", child: null })
    // Not known yet: the caller is told whose origin to fetch.
    expect(branchRoot("f3", 2, origins)).toEqual({ kind: "unknown", session: "f3" })
  })

  test("the alternatives: the root first, then its forks at that point with something said, by creation", () => {
    const forks = [
      summary("late", { forkedFrom: { session: "r", seq: 5 }, createdAt: 30 }),
      summary("early", { forkedFrom: { session: "r", seq: 5 }, createdAt: 10 }),
      summary("elsewhere", { forkedFrom: { session: "r", seq: 9 }, createdAt: 5 }),
      // Forked at the point but nothing written in it yet: not a branch of this message.
      summary("empty", { forkedFrom: { session: "r", seq: 5 }, createdAt: 20, messages: 1 })
    ]
    const fromLate = branchSet({ kind: "root", root: "r", child: { session: "late", seq: 5 } }, 5, 1, forks)
    expect(fromLate).toEqual({ root: "r", seq: 5, sessions: ["r", "early", "late"], current: 2 })
    const fromRoot = branchSet({ kind: "root", root: "r", child: null }, 5, 1, forks)
    expect(fromRoot.current).toBe(0)
    // A chain member forked after the point shares the root's message: it is on the root's line.
    expect(branchSet({ kind: "root", root: "r", child: { session: "elsewhere", seq: 9 } }, 5, 1, forks).current).toBe(0)
  })

  test("hostile origins: a fork cycle and an endless chain end; a deleted parent ends the trace at its fork", () => {
    const cycle = known({ a: { session: "b", seq: 9 }, b: { session: "a", seq: 9 } })
    // The trace stops where the chain comes back on itself.
    expect(branchRoot("a", 2, cycle)).toEqual({ kind: "root", root: "b", child: { session: "a", seq: 9 } })
    const chain = (s: string): OriginInfo => ({ kind: "known", origin: { session: `${s}x`, seq: 100 } })
    const long = branchRoot("s", 1, chain)
    expect(long.kind === "root" && long.root.length).toBeLessThan(80)
    const gone = (s: string): OriginInfo | undefined => (s === "p" ? { kind: "gone" } : s === "c" ? { kind: "known", origin: { session: "p", seq: 4 } } : undefined)
    expect(branchRoot("c", 3, gone)).toEqual({ kind: "root", root: "c", child: null })
  })

  test("a tape's origin is read from its first line only; a first line of another shape is refused", async () => {
    let cancelled = false
    const body = (first: string) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(`${first}\n`))
        },
        pull() {
          // More would come for ever: only a reader that stops after the first line ends.
          return new Promise(() => undefined)
        },
        cancel() {
          cancelled = true
        }
      })
    const ep = { origin: "http://x", token: null }
    const line = '{"session":"f","seq":1,"at":1,"by":"system","type":"SessionCreated","forkedFrom":{"session":"r","seq":4}}'
    expect(await api(ep, async () => new Response(body(line))).origin("f")).toEqual({ session: "r", seq: 4 })
    expect(cancelled).toBe(true)
    expect(await api(ep, async () => new Response(body('{"type":"SessionCreated"}'))).origin("r")).toBeNull()
    await expect(api(ep, async () => new Response(body('{"type":"UserMessageAdded"}'))).origin("r")).rejects.toMatchObject({ code: "bad_response" })
    // A first line that never ends is read only so far.
    const flood = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(new TextEncoder().encode("x".repeat(16_384)))
      }
    })
    await expect(api(ep, async () => new Response(flood)).origin("r")).rejects.toMatchObject({ code: "bad_response" })
  })
})

describe("a provider's request body, for people", () => {
  test("OpenAI chat completions: messages by role, content strings or parts; the rest are settings", () => {
    const v = promptView({
      model: "gpt-4.1",
      stream: true,
      messages: [
        { role: "system", content: "You are…" },
        { role: "user", content: [{ type: "text", text: "hi" }, { type: "image_url", image_url: { url: "x" } }] }
      ]
    })
    expect(v.messages).toEqual([
      { role: "system", text: "You are…" },
      { role: "user", text: "hi\n[image_url]" }
    ])
    expect(v.settings.map((s) => s.key)).toEqual(["model", "stream"])
  })

  test("Anthropic and Bedrock: the system prompt beside the messages, content blocks", () => {
    expect(promptView({ system: [{ text: "sys" }], messages: [{ role: "user", content: [{ text: "q" }] }] }).messages).toEqual([
      { role: "system", text: "sys" },
      { role: "user", text: "q" }
    ])
    expect(promptView({ system: "sys", messages: [{ role: "assistant", content: "a" }], max_tokens: 10 }).settings).toEqual([{ key: "max_tokens", value: "10" }])
  })

  test("a body of any other shape is shown, never trusted", () => {
    expect(promptView("text").messages).toEqual([])
    expect(promptView(null).settings).toEqual([{ key: "body", value: "null" }])
    expect(promptView({ messages: [5, { content: { a: 1 } }] }).messages).toEqual([
      { role: "?", text: "5" },
      { role: "?", text: '{"a":1}' }
    ])
    expect(promptView({ messages: "no" })).toEqual({ messages: [], settings: [], chars: 0 })
  })
})

const S = "s1"
const tapeOf = (drafts: ReadonlyArray<Record<string, unknown>>): Array<Envelope> =>
  drafts.map((d, i) => decodeEnvelopeSync({ session: S, seq: i + 1, at: 1_000 + i, by: "system", ...d }))
const view = (drafts: ReadonlyArray<Record<string, unknown>>) => new ChatBuilder().build(fold(S, tapeOf(drafts)))

describe("when the chat offers Retry / Regenerate (DESIGN.md §2 rule 8)", () => {
  const asked = [
    { type: "SessionCreated" },
    { type: "UserMessageAdded", by: "user:c1", messageId: "msg-2", text: "hi" },
    { type: "TurnStarted", turnId: "turn-3", model: "scripted" }
  ]

  test("the last reply, once it ended, when nothing runs and no message followed it", () => {
    expect(view(asked).retryTurn).toBeNull()
    expect(view([...asked, { type: "TurnFailed", by: "model", turnId: "turn-3", error: "x", retryable: false }]).retryTurn).toBe("turn-3")
    expect(view([...asked, { type: "TurnCompleted", by: "model", turnId: "turn-3" }]).retryTurn).toBe("turn-3")
    const followed = view([
      ...asked,
      { type: "TurnCompleted", by: "model", turnId: "turn-3" },
      { type: "UserMessageAdded", by: "user:c1", messageId: "msg-5", text: "again" }
    ])
    expect(followed.retryTurn).toBeNull()
  })

  test("not while a call waits for approval; a retried reply is marked, and so is its turn's call", () => {
    const pending = [
      ...asked,
      { type: "ToolCallRequested", by: "model", turnId: "turn-3", callId: "call-4", tool: "eval", args: { code: "1" } },
      { type: "TurnCompleted", by: "model", turnId: "turn-3" }
    ]
    expect(view(pending).retryTurn).toBeNull()
    const retried = view([
      ...pending,
      { type: "InterruptRequested", by: "user:c1", reason: "stop" },
      { type: "ToolCallRejected", by: "user:c1", callId: "call-4", reason: "stop" },
      { type: "TurnStarted", turnId: "turn-9", model: "scripted", retryOf: "turn-3" }
    ])
    expect([...retried.retried]).toEqual(["turn-3"])
    expect([...retried.turnsWithCalls]).toEqual(["turn-3"])
    const old = retried.entries.find((e) => e.kind === "assistant" && e.turnId === "turn-3")
    expect(old?.kind === "assistant" && old.retriedBy).toBe("turn-9")
  })
})

describe("words", () => {
  test("the refusals of the new commands, and where a tool comes from", () => {
    expect(humanError("not_last_turn", "only the last reply can be retried (turn-9)")).toBe("Only the last reply can be run again, and only before a new message follows it.")
    expect(humanError("busy", "a turn can be retried only when nothing is running")).not.toContain("turn can be retried")
    expect(humanError("unknown_model", 'no model "x"; the models are: a, b')).toBe("That model is not one of this server's choices; pick one from the list.")
    expect(humanError("empty_title", "a title needs some text")).toBe("A title needs some text.")
    expect(["builtin", "config", "mcp:fs", "other"].map(sourceLabel)).toEqual(["built-in", "your config", "MCP: fs", "other"])
  })
})
