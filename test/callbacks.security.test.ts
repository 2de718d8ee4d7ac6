// Issue 10, finding 1's second half: whatever a Bun callback throws, and any defect of the effect it starts, is
// logged once (bounded, no stack) and answered; never fatal. The real server, in this process, with faults injected
// where input cannot reach any more (a socket that throws, a store that dies, a file lookup that throws).
import { describe, expect, test } from "bun:test"
import * as BunHttpServer from "@effect/platform-bun/BunHttpServer"
import { Effect, Layer, Logger } from "effect"
import { ModelInfoTag, ServerConfigTag } from "../src/server/Config.ts"
import { makeCreationLimit } from "../src/server/limits.ts"
import { serve } from "../src/server/Server.ts"
import { makeBridge, type Socket } from "../src/server/WsBridge.ts"
import { Bus, layer as busLayer } from "../src/session/Bus.ts"
import { layer as writerLayer, SessionWriter, WriterContext } from "../src/session/SessionWriter.ts"
import { EventStore } from "../src/store/EventStore.ts"
import { makeMemory } from "../src/store/memory.ts"
import { LlmClient } from "../src/llm/LlmClient.ts"
import { ToolCatalogue } from "../src/tools/catalogue.ts"
import { serverConfigFor, testContext } from "./support/context.ts"
import { Client } from "./support/server.ts"

/** Runs `body` against the real server in this process, with the faults below put in, and the log it writes. */
const withServer = async (
  env: Record<string, string>,
  body: (port: number, logs: ReadonlyArray<string>) => Promise<void>
) => {
  const logs: Array<string> = []
  const logger = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`))
  )
  // The store dies on the session named "poison"; the writer dies on the message "die": defects no input can cause.
  const store = Layer.effect(
    EventStore,
    Effect.map(makeMemory, (s) => ({ ...s, head: (id: string) => (id === "poison" ? Effect.die(new Error("disk on fire")) : s.head(id)) }))
  )
  const writer = Layer.effect(
    SessionWriter,
    Effect.map(SessionWriter, (w) => ({
      ...w,
      submit: (...args: Parameters<typeof w.submit>) =>
        args[1].type === "send_message" && args[1].text === "die" ? Effect.die(new Error("writer fell over")) : w.submit(...args)
    }))
  ).pipe(Layer.provideMerge(writerLayer))
  const layer = writer.pipe(
    Layer.provideMerge(busLayer),
    Layer.provideMerge(Layer.mergeAll(store, Layer.succeed(WriterContext, testContext))),
    Layer.provideMerge(Layer.succeed(ServerConfigTag, serverConfigFor({ PORT: "0", ...env }))),
    Layer.provideMerge(Layer.succeed(ModelInfoTag, { model: "scripted", provider: "test", offline: true })),
    Layer.provideMerge(ToolCatalogue.layerWith({ workspace: ".", httpAllow: [] })),
    Layer.provideMerge(LlmClient.layerOffline()),
    Layer.provideMerge(BunHttpServer.layerContext),
    Layer.provideMerge(logger)
  )
  await Effect.runPromise(
    Effect.scoped(Effect.gen(function* () {
      const { port } = yield* serve
      yield* Effect.promise(() => body(port, logs))
    })).pipe(Effect.provide(layer))
  )
}

describe("websocket callbacks", () => {
  test("a socket that throws inside message, open, close and drain: each is logged once, none escapes", async () => {
    const logs: Array<string> = []
    const logger = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(Array.isArray(message) ? message[0] : message))))
    const layer = writerLayer.pipe(
      Layer.provideMerge(busLayer),
      Layer.provideMerge(Layer.mergeAll(Layer.effect(EventStore, makeMemory), Layer.succeed(WriterContext, testContext))),
      Layer.provideMerge(Layer.succeed(ServerConfigTag, serverConfigFor({}))),
      Layer.provideMerge(logger)
    )
    await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const bridge = yield* makeBridge(makeCreationLimit(60))
      let sends = 0
      const fake = {
        data: bridge.newConn("c1", "test"),
        getBufferedAmount: () => 0,
        close: () => undefined,
        send: () => {
          sends++
          throw new Error(`socket gone ${"!".repeat(10_000)}`)
        }
      }
      // A fake socket: only what the bridge calls is there.
      const ws = fake as unknown as Socket
      expect(() => bridge.onOpen(ws)).not.toThrow()
      expect(() => bridge.onMessage(ws, "not json")).not.toThrow()
      fake.data.resume = () => {
        throw new Error("drain broke")
      }
      expect(() => bridge.onDrain(ws)).not.toThrow()
      expect(() => bridge.onClose(ws, 1000, "bye")).not.toThrow()
      // The log lines are written by fibers the callbacks started: wait for them, scheduler turn by turn.
      for (let turn = 0; turn < 1_000 && logs.filter((l) => l.startsWith("websocket ")).length < 2; turn++) yield* Effect.yieldNow()
      // The bad frame's answer threw, then its fallback answer threw too: two sends, one logged fault.
      expect(sends).toBe(2)
      const faults = logs.filter((l) => l.startsWith("websocket "))
      expect(faults.map((l) => l.replace(/!+.*/, "!…"))).toEqual([
        "websocket message of client c1 failed: Error: socket gone !…",
        "websocket drain of client c1 failed: Error: drain broke"
      ])
      expect(Math.max(...faults.map((l) => l.length))).toBeLessThanOrEqual(400)
    }).pipe(Effect.provide(layer))))
  })

  test("a connection's feed ends with the bridge, even when its socket never says it closed", async () => {
    const layer = writerLayer.pipe(
      Layer.provideMerge(busLayer),
      Layer.provideMerge(Layer.mergeAll(Layer.effect(EventStore, makeMemory), Layer.succeed(WriterContext, testContext))),
      Layer.provideMerge(Layer.succeed(ServerConfigTag, serverConfigFor({})))
    )
    await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const bus = yield* Bus
      const sent: Array<string> = []
      const during = yield* Effect.scoped(Effect.gen(function* () {
        const bridge = yield* makeBridge(makeCreationLimit(60))
        const fake = { data: bridge.newConn("c1", "test"), getBufferedAmount: () => 0, close: () => undefined, send: (text: string) => sent.push(text) }
        bridge.onMessage(fake as unknown as Socket, JSON.stringify({ type: "hello", session: null, after: 0 }))
        for (let turn = 0; turn < 10_000 && !sent.some((t) => t.includes('"SessionCreated"')); turn++) yield* Effect.yieldNow()
        return (yield* bus.stats).subscribers
      }))
      expect(sent.some((t) => t.includes('"SessionCreated"'))).toBe(true)
      expect(during).toBe(1)
      // The bridge's scope closed (a server stopping) with no close callback from the socket: its feed is gone too.
      expect((yield* bus.stats).subscribers).toBe(0)
    }).pipe(Effect.provide(layer))))
  })

  test("a hello whose store dies gets error{internal}; a command whose writer dies gets nack{internal}; both logged once", async () => {
    await withServer({}, async (port, logs) => {
      const c = await Client.connect(port)
      await expect(c.hello("poison")).rejects.toThrow(/internal/)
      await c.hello(null)
      const reply = await c.command({ type: "send_message", text: "die" })
      expect(reply.type === "nack" && reply.error.code).toBe("internal")
      expect((await c.command({ type: "send_message", text: "fine" })).type).toBe("ack")
      const faults = logs.filter((l) => l.includes("websocket "))
      expect(faults).toHaveLength(2)
      expect(faults[0]).toMatch(/websocket hello of client \S+ failed: Error: disk on fire$/)
      expect(faults[1]).toMatch(/websocket command of client \S+ failed: Error: writer fell over$/)
      c.close()
    })
  })
})

describe("fetch", () => {
  test("a request that throws inside fetch gets a one-line 500 and one log line; the server goes on", async () => {
    // A NUL in the web root makes Bun's file lookup throw: a fault of the server, not of the request.
    await withServer({ TAPE_WEB_ROOT: "/tmp/no\u0000where" }, async (port, logs) => {
      const res = await fetch(`http://127.0.0.1:${port}/some/page`)
      expect(res.status).toBe(500)
      expect(await res.text()).toBe("internal error: the server failed on this request\n")
      expect(logs.filter((l) => l.includes("GET /some/page failed"))).toHaveLength(1)
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    })
  })
})
