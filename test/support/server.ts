/**
 * Test support: starts the real server process (`bun src/main.ts`) on a free port and talks to it over real
 * websockets. No sleeps: every wait is on a frame, an event or the process's output.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Envelope } from "../../src/domain/Event.ts"
import type { ServerFrame } from "../../src/server/Protocol.ts"
import { ROOT, spawnUntil } from "./process.ts"

export interface ServerProcess {
  readonly url: string
  readonly port: number
  readonly proc: ReturnType<typeof Bun.spawn>
  readonly output: () => string
  readonly stop: (signal?: "SIGTERM" | "SIGKILL") => Promise<number>
}

export const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), `tape-${prefix}-`))

export const writeScript = (dir: string, script: unknown): string => {
  const path = join(dir, "script.json")
  writeFileSync(path, JSON.stringify(script))
  return path
}

/** Starts the server (or another entry point of test/support) and resolves once it printed its URL. */
export const startServer = async (env: Record<string, string>, entry = "src/main.ts"): Promise<ServerProcess> => {
  const spawned = await spawnUntil(
    [process.execPath, join(ROOT, entry)],
    { ...process.env, PORT: "0", TAPE_STORE: "memory", BAML_LOG: "warn", TAPE_WEB_ROOT: join(ROOT, "web/dist"), ...env },
    /Agent Tape listening on (http:\/\/[^\s]+)/
  )
  const url = spawned.match[1]!
  return { url, port: Number(new URL(url).port), proc: spawned.proc, output: spawned.output, stop: spawned.stop }
}

/** A websocket client that records every frame and folds nothing: tests assert on the raw tape. */
export class Client {
  readonly frames: Array<ServerFrame> = []
  readonly events: Array<Envelope> = []
  session = ""
  private waiters: Array<() => void> = []
  private nextId = 0
  closed: { code: number; reason: string } | null = null

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (m) => {
      const frame = JSON.parse(String(m.data)) as ServerFrame
      this.frames.push(frame)
      if (frame.type === "welcome") this.session = frame.session
      if (frame.type === "events") this.events.push(...frame.events)
      this.wake()
    }
    ws.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason }
      this.wake()
    }
  }

  private wake() {
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }

  static async connect(port: number, opts: { headers?: Record<string, string>; token?: string } = {}): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${opts.token ? `?token=${opts.token}` : ""}`, { headers: opts.headers ?? {} } as unknown as string[])
    await new Promise<void>((res, rej) => {
      ws.onopen = () => res()
      ws.onerror = () => rej(new Error("websocket failed to open"))
    })
    return new Client(ws)
  }

  /** Resolves when `pred` holds, checking after every frame; fails after `ms`. */
  async until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!pred()) {
      if (this.closed && !pred()) throw new Error(`connection closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}; last frames: ${JSON.stringify(this.frames.slice(-3))}`)
      await new Promise<void>((res) => {
        const t = setTimeout(res, left)
        this.waiters.push(() => {
          clearTimeout(t)
          res()
        })
      })
    }
  }

  send(frame: unknown) {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame))
  }

  async hello(session: string | null, after = 0): Promise<string> {
    const before = this.frames.length
    this.send({ type: "hello", session, after })
    await this.until(() => this.frames.slice(before).some((f) => f.type === "welcome" || f.type === "error"), "welcome")
    const f = this.frames.slice(before).find((f) => f.type === "welcome" || f.type === "error")!
    if (f.type === "error") throw new Error(`hello refused: ${f.code}: ${f.message}`)
    return this.session
  }

  /** Sends a command and resolves with its ack or nack. */
  async command(command: unknown, session = this.session): Promise<Extract<ServerFrame, { type: "ack" | "nack" }>> {
    const id = `k${++this.nextId}`
    this.send({ type: "command", id, session, command })
    let reply: Extract<ServerFrame, { type: "ack" | "nack" }> | undefined
    await this.until(() => {
      reply = this.frames.find((f): f is Extract<ServerFrame, { type: "ack" | "nack" }> => (f.type === "ack" || f.type === "nack") && f.id === id)
      return reply !== undefined
    }, `reply to ${id}`)
    return reply!
  }

  has(pred: (e: Envelope) => boolean) {
    return this.events.some(pred)
  }

  close() {
    this.ws.close()
  }
}

/** Reads a session's tape over HTTP. */
export const exportTape = async (port: number, session: string): Promise<Array<Envelope>> => {
  const res = await fetch(`http://127.0.0.1:${port}/api/sessions/${session}/events`)
  const text = await res.text()
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Envelope)
}
