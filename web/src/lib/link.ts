/**
 * The websocket link, framework-free: connect, reconnect with backoff, validate every frame with the shared
 * Protocol schemas, and pair each command with its ack/nack. It keeps no session state; its owner does.
 */
import { Either, Schema } from "effect"
import type { Command } from "../../../src/domain/Command.ts"
import { ClientFrame, decodeServerFrame, type ServerFrame } from "../../../src/server/Protocol.ts"

export type LinkStatus = "connecting" | "connected" | "reconnecting" | "offline"

/** The part of the browser WebSocket the link uses (a fake one in tests). */
export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: Event) => unknown) | null
  onclose: ((ev: CloseEvent) => unknown) | null
  onmessage: ((ev: MessageEvent) => unknown) | null
  onerror: ((ev: Event) => unknown) | null
}

const OPEN = 1

export interface LinkDeps {
  readonly connect: () => SocketLike
  readonly setTimer: (f: () => void, ms: number) => number
  readonly clearTimer: (handle: number) => void
  readonly random: () => number
  readonly newId: () => string
  /** False when the browser knows it has no network. */
  readonly online: () => boolean
}

export type Welcome = Extract<ServerFrame, { type: "welcome" }>
export type EventsFrame = Extract<ServerFrame, { type: "events" }>

export interface LinkHandlers {
  readonly status: (status: LinkStatus, attempt: number) => void
  /** The socket is open (first time or again): say hello now. */
  readonly open: () => void
  readonly welcome: (frame: Welcome) => void
  readonly events: (frame: EventsFrame) => void
  /** An `error` frame from the server, or a frame from it that did not validate. */
  readonly error: (code: string, message: string) => void
}

export type CommandResult =
  | { readonly ok: true; readonly seq: number }
  | { readonly ok: false; readonly code: string; readonly message: string }

/** Backoff after the n-th failed attempt (1-based): 250 ms doubling to 10 s, with jitter so tabs do not stampede. */
export const backoffMs = (attempt: number, random: number): number => {
  const base = Math.min(10_000, 250 * 2 ** Math.max(0, attempt - 1))
  return Math.round(base * (0.75 + random * 0.5))
}

/** Failed attempts after which the status says `offline` rather than `reconnecting` (retries go on). */
export const OFFLINE_AFTER = 5
/** A command with no answer after this long is reported as timed out. */
export const COMMAND_TIMEOUT_MS = 20_000

interface Waiting {
  readonly resolve: (r: CommandResult) => void
  readonly timer: number
}

const encodeClientFrame = Schema.encodeEither(ClientFrame)

export class Link {
  private socket: SocketLike | null = null
  private attempt = 0
  private retryTimer: number | null = null
  private stopped = true
  private readonly waiting = new Map<string, Waiting>()

  constructor(
    private readonly deps: LinkDeps,
    private readonly handlers: LinkHandlers
  ) {}

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.retryTimer !== null) this.deps.clearTimer(this.retryTimer)
    this.retryTimer = null
    const s = this.socket
    this.socket = null
    if (s) {
      s.onclose = null
      s.close(1000, "bye")
    }
    this.failWaiting("disconnected", "the connection was closed")
  }

  get isOpen(): boolean {
    return this.socket !== null && this.socket.readyState === OPEN
  }

  /** Skips the backoff wait (the user pressed retry, or the browser came back online). */
  retryNow(): void {
    if (this.stopped || this.isOpen || this.retryTimer === null) return
    this.deps.clearTimer(this.retryTimer)
    this.retryTimer = null
    this.connect()
  }

  hello(session: string | null, after: number): boolean {
    return this.sendFrame({ type: "hello", session, after })
  }

  /** Sends a command; the promise settles with its ack or nack (never rejects). */
  command(session: string, command: Command): Promise<CommandResult> {
    const id = this.deps.newId()
    const encoded = encodeClientFrame({ type: "command", id, session, command })
    if (Either.isLeft(encoded)) return Promise.resolve({ ok: false, code: "invalid_command", message: encoded.left.message })
    if (!this.isOpen) return Promise.resolve({ ok: false, code: "disconnected", message: "not connected to the server; try again when it is back" })
    return new Promise((resolve) => {
      const timer = this.deps.setTimer(() => {
        this.waiting.delete(id)
        resolve({ ok: false, code: "timeout", message: "the server did not answer in time; the command may or may not have been applied" })
      }, COMMAND_TIMEOUT_MS)
      this.waiting.set(id, { resolve, timer })
      this.socket?.send(JSON.stringify(encoded.right))
    })
  }

  private sendFrame(frame: ClientFrame): boolean {
    if (!this.isOpen) return false
    const encoded = encodeClientFrame(frame)
    if (Either.isLeft(encoded)) return false
    this.socket?.send(JSON.stringify(encoded.right))
    return true
  }

  private connect(): void {
    this.handlers.status(this.attempt === 0 ? "connecting" : this.statusWhileDown(), this.attempt)
    let s: SocketLike
    try {
      s = this.deps.connect()
    } catch {
      this.scheduleRetry()
      return
    }
    this.socket = s
    s.onopen = () => {
      if (this.socket !== s) return
      this.attempt = 0
      this.handlers.status("connected", 0)
      this.handlers.open()
    }
    s.onmessage = (ev) => {
      if (this.socket !== s) return
      this.receive(typeof ev.data === "string" ? ev.data : "")
    }
    s.onerror = () => {
      // Browsers always follow an error with a close event; the retry is scheduled there.
    }
    s.onclose = () => {
      if (this.socket !== s) return
      this.socket = null
      this.failWaiting("disconnected", "the connection dropped before the server answered; the command may or may not have been applied")
      this.scheduleRetry()
    }
  }

  private statusWhileDown(): LinkStatus {
    return this.attempt >= OFFLINE_AFTER || !this.deps.online() ? "offline" : "reconnecting"
  }

  private scheduleRetry(): void {
    if (this.stopped) return
    this.attempt++
    this.handlers.status(this.statusWhileDown(), this.attempt)
    this.retryTimer = this.deps.setTimer(() => {
      this.retryTimer = null
      this.connect()
    }, backoffMs(this.attempt, this.deps.random()))
  }

  private failWaiting(code: string, message: string): void {
    for (const [id, w] of this.waiting) {
      this.deps.clearTimer(w.timer)
      w.resolve({ ok: false, code, message })
      this.waiting.delete(id)
    }
  }

  private settle(id: string, result: CommandResult): void {
    const w = this.waiting.get(id)
    if (!w) return
    this.waiting.delete(id)
    this.deps.clearTimer(w.timer)
    w.resolve(result)
  }

  private receive(text: string): void {
    const decoded = decodeServerFrame(text)
    if (Either.isLeft(decoded)) {
      this.handlers.error("bad_server_frame", `a frame from the server did not validate: ${decoded.left.message.slice(0, 400)}`)
      return
    }
    const frame = decoded.right
    switch (frame.type) {
      case "welcome":
        this.handlers.welcome(frame)
        return
      case "events":
        this.handlers.events(frame)
        return
      case "ack":
        this.settle(frame.id, { ok: true, seq: frame.seq })
        return
      case "nack":
        this.settle(frame.id, { ok: false, code: frame.error.code, message: frame.error.message })
        return
      case "error":
        this.handlers.error(frame.code, frame.message)
        return
      default: {
        const _exhaustive: never = frame
        return _exhaustive
      }
    }
  }
}
