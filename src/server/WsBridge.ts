/**
 * Websocket bridge (DESIGN.md §4): hello/welcome with catch-up, live `events` frames coalesced per client per tick,
 * commands decided by the SessionWriter with ack/nack, a typed `error` for every bad frame. Owns no session state.
 */
import type { ServerWebSocket } from "bun"
import { Duration, Effect, Either, Fiber, Runtime, Stream } from "effect"
import type { Envelope } from "../domain/Event.ts"
import { Bus } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore } from "../store/EventStore.ts"
import { ServerConfigTag } from "./Config.ts"
import { decodeClientFrame, MAX_FRAME_BYTES, type ServerFrame } from "./Protocol.ts"

/** Most events in one `events` frame (catch-up of a long tape is split). */
const MAX_EVENTS_PER_FRAME = 2_000

export interface Conn {
  readonly clientId: string
  readonly remote: string
  session: string | null
  sub: Fiber.RuntimeFiber<void, never> | null
  outbox: Array<Envelope>
  /** Rough size of the outbox in characters, to flush before a frame gets large. */
  outboxChars: number
  flushScheduled: boolean
  tokens: number
  refilledAt: number
  closed: boolean
  /** Resolved by the socket's `drain`; set while the bridge waits for a backed-up socket. */
  drained: (() => void) | null
}

export type Socket = ServerWebSocket<Conn>

export const newConn = (clientId: string, remote: string, now: number, burst: number): Conn => ({
  clientId,
  remote,
  session: null,
  sub: null,
  outbox: [],
  outboxChars: 0,
  flushScheduled: false,
  tokens: burst,
  refilledAt: now,
  closed: false,
  drained: null
})

export const makeBridge = Effect.gen(function* () {
  const writer = yield* SessionWriter
  const store = yield* EventStore
  const bus = yield* Bus
  const config = yield* ServerConfigTag
  const runtime = yield* Effect.runtime<never>()
  const runFork = Runtime.runFork(runtime)
  const burst = config.commandsPerSecond * 2
  const sockets = new Set<Socket>()

  const cutOff = (ws: Socket, why: string): void => {
    if (ws.data.closed) return
    ws.data.closed = true
    runFork(Effect.logInfo(`client ${ws.data.clientId} disconnected: slow reader (${why})`))
    ws.close(4008, "slow reader: too much unsent data; reconnect with your last seq to resume")
  }

  /** Sends one frame; a reader with more than the hard limit still unsent is cut off with a reason (it can resume by seq). */
  const send = (ws: Socket, frame: ServerFrame | string): void => {
    if (ws.data.closed) return
    const buffered = ws.getBufferedAmount()
    if (buffered > config.maxBufferedBytes) return cutOff(ws, `${buffered} bytes unsent`)
    // `true`: compress when the client negotiated permessage-deflate (browsers do); sent plain otherwise.
    ws.send(typeof frame === "string" ? frame : JSON.stringify(frame), true)
  }

  /**
   * Holds the subscription while the socket is backed up, so a client's catch-up or a fast stream never piles up in
   * server memory (the Bus heals what it skips from the store); a socket that does not drain in time is cut off.
   */
  const awaitDrain = (ws: Socket) =>
    Effect.gen(function* () {
      if (ws.data.closed || ws.getBufferedAmount() <= config.highWaterBytes) return
      const drained = yield* Effect.async<void>((resume) => {
        ws.data.drained = () => resume(Effect.void)
        return Effect.sync(() => {
          ws.data.drained = null
        })
      }).pipe(Effect.timeout(Duration.millis(config.slowReaderMs)), Effect.option)
      ws.data.drained = null
      if (drained._tag === "None") cutOff(ws, `did not drain within ${config.slowReaderMs} ms`)
    })

  const flush = (ws: Socket): void => {
    const c = ws.data
    c.flushScheduled = false
    if (c.outbox.length === 0 || c.session === null) return
    const session = c.session
    const events = c.outbox
    c.outbox = []
    c.outboxChars = 0
    // The outbox is flushed as soon as it reaches MAX_EVENTS_PER_FRAME, so one frame always holds it.
    send(ws, `{"type":"events","session":${JSON.stringify(session)},"events":${JSON.stringify(events)}}`)
  }

  const stopWatching = (c: Conn) =>
    Effect.gen(function* () {
      if (c.sub) yield* Fiber.interrupt(c.sub)
      c.sub = null
      c.outbox = []
      c.outboxChars = 0
    })

  const watch = (ws: Socket, session: string, after: number) =>
    Effect.gen(function* () {
      const c = ws.data
      yield* stopWatching(c)
      c.session = session
      c.sub = yield* bus.subscribe(session, after).pipe(
        Stream.runForEach((e) =>
          Effect.suspend(() => {
            if (c.session !== session || c.closed) return Effect.void
            c.outbox.push(e)
            c.outboxChars += 160 + ("text" in e ? e.text.length : 0) + ("output" in e ? e.output.length : 0)
            if (c.outbox.length >= MAX_EVENTS_PER_FRAME || c.outboxChars >= config.highWaterBytes) flush(ws)
            else if (!c.flushScheduled) {
              c.flushScheduled = true
              // Coalesce what arrives in one tick into one frame.
              queueMicrotask(() => flush(ws))
            }
            return awaitDrain(ws)
          })
        ),
        Effect.catchAll((error) => Effect.sync(() => send(ws, { type: "error", code: "store_error", message: error.message }))),
        Effect.forkDaemon
      )
    })

  const hello = (ws: Socket, requested: string | null, after: number) =>
    Effect.gen(function* () {
      const session = requested ?? (yield* writer.create())
      const head = yield* store.head(session)
      if (head === 0) {
        send(ws, { type: "error", code: "unknown_session", message: `session ${session} does not exist` })
        return
      }
      send(ws, { type: "welcome", session, head })
      yield* watch(ws, session, Math.min(after, head))
    }).pipe(Effect.catchAll((e) => Effect.sync(() => send(ws, { type: "error", code: "store_error", message: e.message }))))

  const takeToken = (c: Conn, now: number): boolean => {
    c.tokens = Math.min(burst, c.tokens + ((now - c.refilledAt) / 1000) * config.commandsPerSecond)
    c.refilledAt = now
    if (c.tokens < 1) return false
    c.tokens -= 1
    return true
  }

  /** Handles one incoming frame; every failure answers the client and leaves the server running. */
  const onMessage = (ws: Socket, message: string | Buffer): void => {
    if (typeof message !== "string") {
      send(ws, { type: "error", code: "bad_frame", message: "binary frames are not accepted; send JSON text" })
      return
    }
    if (message.length > MAX_FRAME_BYTES || Buffer.byteLength(message) > MAX_FRAME_BYTES) {
      send(ws, { type: "error", code: "bad_frame", message: `frame over ${MAX_FRAME_BYTES} bytes refused` })
      return
    }
    const decoded = decodeClientFrame(message)
    if (Either.isLeft(decoded)) {
      send(ws, { type: "error", code: "bad_frame", message: decoded.left.message.slice(0, 2_000) })
      return
    }
    const frame = decoded.right
    switch (frame.type) {
      case "hello":
        runFork(hello(ws, frame.session, frame.after))
        return
      case "command": {
        if (!takeToken(ws.data, Date.now())) {
          send(ws, { type: "nack", id: frame.id, error: { code: "rate_limited", message: `more than ${config.commandsPerSecond} commands per second` } })
          return
        }
        runFork(
          writer.submit(frame.session, frame.command, `user:${ws.data.clientId}`).pipe(
            Effect.match({
              onSuccess: (ack) => send(ws, { type: "ack", id: frame.id, seq: ack.head }),
              onFailure: (e) => {
                const error = e._tag === "Rejection" ? { code: e.code, message: e.message } : { code: "store_error", message: e.message }
                runFork(Effect.logInfo(`client ${ws.data.clientId}: ${frame.command.type} on ${frame.session} rejected: ${error.code}: ${error.message}`))
                send(ws, { type: "nack", id: frame.id, error })
              }
            })
          )
        )
        return
      }
      default: {
        const _exhaustive: never = frame
        return _exhaustive
      }
    }
  }

  const onOpen = (ws: Socket): void => {
    sockets.add(ws)
    runFork(Effect.logInfo(`client ${ws.data.clientId} connected from ${ws.data.remote}`))
  }

  const onClose = (ws: Socket, code: number, reason: string): void => {
    sockets.delete(ws)
    ws.data.closed = true
    runFork(
      stopWatching(ws.data).pipe(
        Effect.zipRight(Effect.logInfo(`client ${ws.data.clientId} disconnected (${code}${reason ? `: ${reason}` : ""})`))
      )
    )
  }

  /** Closes every socket with a reason (graceful shutdown). */
  const closeAll = (code: number, reason: string) =>
    Effect.sync(() => {
      for (const ws of sockets) {
        ws.data.closed = true
        ws.close(code, reason)
      }
    })

  const onDrain = (ws: Socket): void => ws.data.drained?.()

  return { onMessage, onOpen, onClose, onDrain, closeAll, newConn: (clientId: string, remote: string) => newConn(clientId, remote, Date.now(), burst) }
})

export type Bridge = Effect.Effect.Success<typeof makeBridge>
