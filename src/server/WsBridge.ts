/**
 * Websocket bridge (DESIGN.md §4): hello/welcome with catch-up, live `events` frames coalesced per client per tick,
 * commands decided by the SessionWriter with ack/nack, a typed `error` for every bad frame. Owns no session state.
 */
import type { ServerWebSocket } from "bun"
import { Cause, Clock, Effect, Either, ExecutionStrategy, Exit, FiberSet, Scope } from "effect"
import type { Envelope } from "../domain/Event.ts"
import { describeThrown, oneLine } from "../domain/safeJson.ts"
import { Bus, type FollowSink } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore } from "../store/EventStore.ts"
import { ServerConfigTag } from "./Config.ts"
import { type CreationLimit, TokenBucket } from "./limits.ts"
import { type ClientFrame, decodeClientFrame, type ServerFrame } from "./Protocol.ts"

/** Most events in one `events` frame (catch-up of a long tape is split). */
const MAX_EVENTS_PER_FRAME = 2_000

export interface Conn {
  readonly clientId: string
  readonly remote: string
  session: string | null
  /** The scope of the session's feed (`Bus.follow`); closed to stop following. */
  sub: Scope.CloseableScope | null
  /** Resumes the feed after the socket drained (the follower paused while the socket was backed up). */
  resume: (() => void) | null
  /** Cuts the connection off unless the socket drains in time (armed when the feed pauses). */
  slowTimer: ReturnType<typeof setTimeout> | null
  outbox: Array<Envelope>
  /** Rough size of the outbox in characters, to flush before a frame gets large. */
  outboxChars: number
  flushScheduled: boolean
  /** Commands this connection may send now. */
  readonly commands: TokenBucket
  /** Sessions this connection may create now. */
  readonly creations: TokenBucket
  closed: boolean
}

export type Socket = ServerWebSocket<Conn>

/**
 * The bridge between Bun's websocket callbacks and the session writer. Every callback runs inside a guard: what it
 * throws, and any defect of the effect it starts, is logged once (bounded, no stack) and answered; the server goes on.
 */
export const makeBridge = (creations: CreationLimit) =>
  Effect.gen(function* () {
    const writer = yield* SessionWriter
    const store = yield* EventStore
    const bus = yield* Bus
    const config = yield* ServerConfigTag
    // One runtime for every callback (as @effect/platform's Socket does); its fibers are interrupted with the scope.
    const fibers = yield* FiberSet.make<unknown, never>()
    // Each connection's feed lives in a child of the bridge's scope: closed with its socket, or with the bridge.
    const bridgeScope = yield* Effect.scope
    const run = yield* FiberSet.runtime(fibers)<never>()
    const burst = config.commandsPerSecond * 2
    const sockets = new Set<Socket>()

    /** Logs a fault once, bounded and without a stack, so a flood of bad frames cannot flood the log. */
    const logFault = (where: string, ws: Socket, thrown: unknown): void => {
      try {
        run(Effect.logError(`websocket ${where} of client ${ws.data.clientId} failed: ${describeThrown(thrown)}`))
      } catch {
        // The runtime is closed (shutting down): there is nothing left to log to.
      }
    }

    /** Wraps a Bun callback: whatever it throws is logged once and answered with `answer`, never fatal. */
    const guard = <A extends ReadonlyArray<unknown>>(where: string, f: (ws: Socket, ...args: A) => void, answer?: (ws: Socket) => void) =>
      (ws: Socket, ...args: A): void => {
        try {
          f(ws, ...args)
        } catch (thrown) {
          logFault(where, ws, thrown)
          try {
            answer?.(ws)
          } catch {
            // The socket itself is failing; its close callback cleans up.
          }
        }
      }

    /** Runs a callback's effect on the bridge's runtime; a defect is logged once and answered with `answer()`. */
    const runGuarded = (ws: Socket, where: string, effect: Effect.Effect<void>, answer: () => ServerFrame) =>
      run(
        effect.pipe(
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.void
              : Effect.sync(() => {
                logFault(where, ws, Cause.squash(cause))
                send(ws, answer())
              })
          )
        )
      )

    const cutOff = (ws: Socket, why: string): void => {
      if (ws.data.closed) return
      ws.data.closed = true
      run(Effect.logInfo(`client ${ws.data.clientId} disconnected: slow reader (${why})`))
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

    // Also run from a microtask, outside any callback of Bun's: guarded like one.
    const flush = guard("flush", (ws: Socket): void => {
      const c = ws.data
      c.flushScheduled = false
      if (c.outbox.length === 0 || c.session === null) return
      const session = c.session
      const events = c.outbox
      c.outbox = []
      c.outboxChars = 0
      // The outbox is flushed as soon as it reaches MAX_EVENTS_PER_FRAME, so one frame always holds it.
      send(ws, `{"type":"events","session":${JSON.stringify(session)},"events":${JSON.stringify(events)}}`)
    })

    const stopWatching = (c: Conn) =>
      Effect.gen(function* () {
        const sub = c.sub
        c.sub = null
        c.resume = null
        if (c.slowTimer !== null) clearTimeout(c.slowTimer)
        c.slowTimer = null
        c.outbox = []
        c.outboxChars = 0
        if (sub) yield* Scope.close(sub, Exit.void)
      })

    /** The feed paused on a backed-up socket: unless it drains within slowReaderMs, the reader is cut off. */
    const armSlowReader = (ws: Socket): void => {
      if (ws.data.slowTimer !== null) return
      ws.data.slowTimer = setTimeout(
        guard("slow reader check", (ws: Socket) => {
          ws.data.slowTimer = null
          if (ws.getBufferedAmount() > config.highWaterBytes) cutOff(ws, `did not drain within ${config.slowReaderMs} ms`)
          else ws.data.resume?.()
        }),
        config.slowReaderMs,
        ws
      )
    }

    /**
     * Follows `session` after `after` into the connection's outbox: events are handed over by plain calls from the Bus
     * (no queue and no fiber per event) and coalesced per tick into one frame. While the socket is backed up the feed
     * pauses, so a client's catch-up or a fast stream never piles up in server memory (the Bus reads what it skipped
     * from the store on resume); a socket that does not drain in time is cut off.
     */
    const watch = (ws: Socket, session: string, after: number) =>
      Effect.gen(function* () {
        const c = ws.data
        yield* stopWatching(c)
        c.session = session
        const sink: FollowSink = {
          event: (e) => {
            if (c.session !== session || c.closed) return
            c.outbox.push(e)
            c.outboxChars += 160 + ("text" in e ? e.text.length : 0) + ("output" in e ? e.output.length : 0)
            if (c.outbox.length >= MAX_EVENTS_PER_FRAME || c.outboxChars >= config.highWaterBytes) flush(ws)
            else if (!c.flushScheduled) {
              c.flushScheduled = true
              // Coalesce what arrives in one tick into one frame.
              queueMicrotask(() => flush(ws))
            }
          },
          ready: () => {
            if (c.closed) return false
            if (ws.getBufferedAmount() <= config.highWaterBytes) return true
            armSlowReader(ws)
            return false
          },
          failed: (reason) => {
            if (reason._tag === "StoreError") return send(ws, { type: "error", code: "store_error", message: reason.message })
            logFault("subscription", ws, reason.cause)
            send(ws, { type: "error", code: "internal", message: `the live feed of ${session} failed; say hello again to resume` })
          }
        }
        const scope = yield* Scope.fork(bridgeScope, ExecutionStrategy.sequential)
        c.sub = scope
        const following = yield* Scope.extend(bus.follow(session, after, sink), scope)
        c.resume = following.resume
      })

    const hello = (ws: Socket, requested: string | null, after: number) =>
      Effect.gen(function* () {
        if (requested === null && !(yield* creations.allow(ws.data.remote, ws.data.creations))) {
          send(ws, {
            type: "error",
            code: "rate_limited",
            message: `too many new sessions (at most ${creations.perMinute} a minute per address); wait and try again`
          })
          return
        }
        const session = requested ?? (yield* writer.create())
        const head = yield* store.head(session)
        if (head === 0) {
          send(ws, { type: "error", code: "unknown_session", message: `session ${session} does not exist` })
          return
        }
        send(ws, { type: "welcome", session, head })
        yield* watch(ws, session, Math.min(after, head))
      }).pipe(Effect.catchAll((e) => Effect.sync(() => send(ws, { type: "error", code: "store_error", message: e.message }))))

    const command = (ws: Socket, frame: Extract<ClientFrame, { type: "command" }>) =>
      Effect.gen(function* () {
        if (!ws.data.commands.take(yield* Clock.currentTimeMillis)) {
          send(ws, { type: "nack", id: frame.id, error: { code: "rate_limited", message: `more than ${config.commandsPerSecond} commands per second` } })
          return
        }
        const result = yield* Effect.either(writer.submit(frame.session, frame.command, `user:${ws.data.clientId}`))
        if (Either.isRight(result)) return send(ws, { type: "ack", id: frame.id, seq: result.right.head })
        const e = result.left
        const error = e._tag === "Rejection" ? { code: e.code, message: e.message } : { code: "store_error", message: e.message }
        yield* Effect.logInfo(`client ${ws.data.clientId}: ${frame.command.type} on ${frame.session} rejected: ${error.code}: ${oneLine(error.message, 300)}`)
        send(ws, { type: "nack", id: frame.id, error })
      })

    /** Handles one incoming frame; every failure answers the client and leaves the server running. */
    const onMessage = guard(
      "message",
      (ws: Socket, message: string | Buffer): void => {
        if (typeof message !== "string") {
          send(ws, { type: "error", code: "bad_frame", message: "binary frames are not accepted; send JSON text" })
          return
        }
        const decoded = decodeClientFrame(message)
        if (Either.isLeft(decoded)) {
          send(ws, { type: "error", code: "bad_frame", message: decoded.left.message })
          return
        }
        const frame = decoded.right
        switch (frame.type) {
          case "hello":
            runGuarded(ws, "hello", hello(ws, frame.session, frame.after), () => ({
              type: "error",
              code: "internal",
              message: "the server failed to open the session; try again"
            }))
            return
          case "command":
            runGuarded(ws, "command", command(ws, frame), () => ({
              type: "nack",
              id: frame.id,
              error: { code: "internal", message: "the server failed on this command; check the tape for what was applied" }
            }))
            return
          default: {
            const _exhaustive: never = frame
            return _exhaustive
          }
        }
      },
      (ws) => send(ws, { type: "error", code: "internal", message: "the server failed on this frame; it was not processed" })
    )

    const onOpen = guard("open", (ws: Socket): void => {
      sockets.add(ws)
      run(Effect.logInfo(`client ${ws.data.clientId} connected from ${ws.data.remote}`))
    })

    const onClose = guard("close", (ws: Socket, code: number, reason: string): void => {
      sockets.delete(ws)
      ws.data.closed = true
      run(
        stopWatching(ws.data).pipe(
          Effect.zipRight(Effect.logInfo(`client ${ws.data.clientId} disconnected (${code}${reason ? `: ${oneLine(reason, 123)}` : ""})`))
        )
      )
    })

    const onDrain = guard("drain", (ws: Socket): void => {
      if (ws.data.slowTimer !== null) clearTimeout(ws.data.slowTimer)
      ws.data.slowTimer = null
      ws.data.resume?.()
    })

    /** Closes every socket with a reason (graceful shutdown). */
    const closeAll = (code: number, reason: string) =>
      Effect.sync(() => {
        for (const ws of sockets) {
          ws.data.closed = true
          ws.close(code, reason)
        }
      })

    /** The state of a new connection, made before its upgrade completes. */
    const newConn = (clientId: string, remote: string): Conn => ({
      clientId,
      remote,
      session: null,
      sub: null,
      resume: null,
      slowTimer: null,
      outbox: [],
      outboxChars: 0,
      flushScheduled: false,
      commands: new TokenBucket(config.commandsPerSecond, burst),
      creations: creations.connectionBucket(),
      closed: false
    })

    return { onMessage, onOpen, onClose, onDrain, closeAll, newConn }
  })

export type Bridge = Effect.Effect.Success<ReturnType<typeof makeBridge>>
