/**
 * The browser's websocket link without a browser: a fake socket and a manual clock drive hello, frame validation,
 * command ack/nack pairing, and reconnect with backoff (connected → reconnecting → offline → connected).
 */
import { describe, expect, test } from "bun:test"
import { backoffMs, COMMAND_TIMEOUT_MS, Link, type LinkStatus, OFFLINE_AFTER, type SocketLike } from "../web/src/lib/link.ts"

class FakeSocket implements SocketLike {
  readyState = 0
  readonly sent: Array<unknown> = []
  closed = false
  onopen: ((ev: Event) => unknown) | null = null
  onclose: ((ev: CloseEvent) => unknown) | null = null
  onmessage: ((ev: MessageEvent) => unknown) | null = null
  onerror: ((ev: Event) => unknown) | null = null
  send(data: string) {
    this.sent.push(JSON.parse(data))
  }
  close() {
    this.closed = true
  }
  open() {
    this.readyState = 1
    this.onopen?.(new Event("open"))
  }
  receive(frame: unknown) {
    this.onmessage?.(new MessageEvent("message", { data: typeof frame === "string" ? frame : JSON.stringify(frame) }))
  }
  drop() {
    this.readyState = 3
    this.onclose?.(new CloseEvent("close"))
  }
}

const harness = () => {
  const sockets: Array<FakeSocket> = []
  const timers = new Map<number, { f: () => void; ms: number }>()
  let nextTimer = 1
  let nextId = 1
  const statuses: Array<[LinkStatus, number]> = []
  const opens: Array<number> = []
  const errors: Array<string> = []
  const events: Array<number> = []
  const link = new Link(
    {
      connect: () => {
        const s = new FakeSocket()
        sockets.push(s)
        return s
      },
      setTimer: (f, ms) => {
        timers.set(nextTimer, { f, ms })
        return nextTimer++
      },
      clearTimer: (h) => void timers.delete(h),
      random: () => 0.5,
      newId: () => `c${nextId++}`,
      online: () => true
    },
    {
      status: (s, a) => statuses.push([s, a]),
      open: () => opens.push(sockets.length),
      welcome: () => undefined,
      events: (f) => events.push(...f.events.map((e) => e.seq)),
      error: (code) => errors.push(code)
    }
  )
  const last = () => {
    const s = sockets.at(-1)
    if (!s) throw new Error("no socket")
    return s
  }
  /** Fires the pending retry timer (the only long-lived timer when no command waits). */
  const fireRetry = () => {
    const entry = [...timers].find(([, t]) => t.ms < COMMAND_TIMEOUT_MS)
    if (!entry) throw new Error("no retry scheduled")
    timers.delete(entry[0])
    entry[1].f()
    return entry[1].ms
  }
  return { link, sockets, timers, statuses, opens, errors, events, last, fireRetry }
}

const created = { session: "s1", seq: 1, at: 1, by: "system", type: "SessionCreated" }

describe("Link", () => {
  test("connects, reports connected and asks its owner to say hello; hello is a validated frame", () => {
    const h = harness()
    h.link.start()
    expect(h.statuses.at(-1)?.[0]).toBe("connecting")
    h.last().open()
    expect(h.statuses.at(-1)).toEqual(["connected", 0])
    expect(h.opens).toEqual([1])
    expect(h.link.hello("s1", 4)).toBe(true)
    expect(h.last().sent).toEqual([{ type: "hello", session: "s1", after: 4 }])
  })

  test("pairs each command with its ack or nack by id", async () => {
    const h = harness()
    h.link.start()
    h.last().open()
    const a = h.link.command("s1", { type: "interrupt", reason: "stop" })
    const b = h.link.command("s1", { type: "approve", callId: "call-7" })
    expect(h.last().sent).toEqual([
      { type: "command", id: "c1", session: "s1", command: { type: "interrupt", reason: "stop" } },
      { type: "command", id: "c2", session: "s1", command: { type: "approve", callId: "call-7" } }
    ])
    h.last().receive({ type: "nack", id: "c2", error: { code: "not_pending", message: "call-7 is not pending" } })
    h.last().receive({ type: "ack", id: "c1", seq: 12 })
    expect(await a).toEqual({ ok: true, seq: 12 })
    expect(await b).toEqual({ ok: false, code: "not_pending", message: "call-7 is not pending" })
  })

  test("refuses to send a command that fails the shared schema, or while disconnected", async () => {
    const h = harness()
    h.link.start()
    expect(await h.link.command("s1", { type: "interrupt" })).toMatchObject({ ok: false, code: "disconnected" })
    h.last().open()
    const tooLong = "x".repeat(100_001)
    expect(await h.link.command("s1", { type: "send_message", text: tooLong })).toMatchObject({ ok: false, code: "invalid_command" })
    expect(h.last().sent).toEqual([])
  })

  test("a frame from the server that does not validate is reported, never delivered", () => {
    const h = harness()
    h.link.start()
    h.last().open()
    h.last().receive("{not json")
    h.last().receive({ type: "events", session: "s1", events: [{ ...created, type: "Bogus" }] })
    h.last().receive({ type: "events", session: "s1", events: [created] })
    h.last().receive({ type: "error", code: "bad_frame", message: "what" })
    expect(h.errors).toEqual(["bad_server_frame", "bad_server_frame", "bad_frame"])
    expect(h.events).toEqual([1])
  })

  test("a drop settles waiting commands, then it reconnects with growing backoff, offline after repeated failures", async () => {
    const h = harness()
    h.link.start()
    h.last().open()
    const waiting = h.link.command("s1", { type: "interrupt" })
    h.last().drop()
    expect(await waiting).toMatchObject({ ok: false, code: "disconnected" })
    expect(h.statuses.at(-1)).toEqual(["reconnecting", 1])
    const delays: Array<number> = []
    for (let i = 1; i < OFFLINE_AFTER + 2; i++) {
      delays.push(h.fireRetry())
      h.last().drop()
    }
    expect(delays).toEqual(delays.map((_, i) => backoffMs(i + 1, 0.5)))
    expect(delays[1]).toBeGreaterThan(delays[0] ?? Infinity)
    expect(h.statuses.at(-1)?.[0]).toBe("offline")
    h.fireRetry()
    h.last().open()
    expect(h.statuses.at(-1)).toEqual(["connected", 0])
    expect(h.opens.length).toBe(2)
  })

  test("retryNow skips the wait; stop closes and schedules nothing", () => {
    const h = harness()
    h.link.start()
    h.last().drop()
    expect(h.sockets.length).toBe(1)
    h.link.retryNow()
    expect(h.sockets.length).toBe(2)
    h.link.stop()
    expect(h.last().closed).toBe(true)
    expect(h.timers.size).toBe(0)
  })

  test("a command with no answer times out", async () => {
    const h = harness()
    h.link.start()
    h.last().open()
    const p = h.link.command("s1", { type: "interrupt" })
    const timeout = [...h.timers.values()].find((t) => t.ms === COMMAND_TIMEOUT_MS)
    timeout?.f()
    expect(await p).toMatchObject({ ok: false, code: "timeout" })
  })

  test("backoff doubles from 250 ms and is capped at 10 s (±25% jitter)", () => {
    expect(backoffMs(1, 0.5)).toBe(250)
    expect(backoffMs(2, 0.5)).toBe(500)
    expect(backoffMs(20, 0.5)).toBe(10_000)
    expect(backoffMs(20, 1)).toBe(12_500)
    expect(backoffMs(1, 0)).toBe(188)
  })
})
