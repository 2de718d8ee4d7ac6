/**
 * Starts the real server (`bun src/main.ts`, SQLite store, the bench endpoint as its model) or the floor server as a
 * child process, and the websocket clients the end-to-end rows use. Clients time frames with `performance.now()`.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"

const ROOT = resolve(import.meta.dir, "../..")

export interface Child {
  readonly port: number
  readonly pid: number
  readonly output: () => string
  readonly stop: () => Promise<void>
}

const made: Array<string> = []

/** A fresh temp folder, removed by `removeTempDirs` at the end of the run. */
export const tempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), `tape-bench-${prefix}-`))
  made.push(dir)
  return dir
}

export const removeTempDirs = (): void => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
}

const spawnAndWait = async (argv: Array<string>, env: Record<string, string | undefined>, ready: RegExp): Promise<Child> => {
  const proc = Bun.spawn(argv, { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" })
  let out = ""
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      // Keep only the tail: a long run logs a line per connection.
      out = (out + decoder.decode(value)).slice(-20_000)
    }
  }
  void pump(proc.stdout as ReadableStream<Uint8Array>)
  void pump(proc.stderr as ReadableStream<Uint8Array>)
  const deadline = Date.now() + 60_000
  for (;;) {
    const m = ready.exec(out)
    if (m) {
      return {
        port: Number(m[1]),
        pid: proc.pid,
        output: () => out,
        stop: async () => {
          proc.kill("SIGTERM")
          const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000)
          await proc.exited
          clearTimeout(timer)
        }
      }
    }
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${argv.join(" ")} did not start:\n${out}`)
    await Bun.sleep(20)
  }
}

/** The real server on a free port, SQLite in `dataDir`, the model at `modelBaseUrl` (an openai-generic endpoint). */
export const startTape = (modelBaseUrl: string, dataDir: string, extra: Record<string, string> = {}): Promise<Child> => {
  const env: Record<string, string | undefined> = { ...process.env }
  // The bench endpoint must be the provider: drop whatever would win over LLM_BASE_URL.
  for (const k of ["LLM_SCRIPT", "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "LLM_API_KEY", "TAPE_TOKEN", "HOST"]) delete env[k]
  Object.assign(env, {
    PORT: "0",
    TAPE_STORE: "sqlite",
    TAPE_DATA: dataDir,
    LLM_BASE_URL: modelBaseUrl,
    LLM_MODEL: "bench",
    BAML_LOG: "warn",
    TAPE_LOG_LEVEL: "warn",
    TAPE_WEB_ROOT: join(ROOT, "web/dist"),
    ...extra
  })
  // BENCH_CPU_PROF=<dir>: profile the server (`bun --cpu-prof`); the profile is written when it exits.
  // BENCH_CPU_PROF_INTERVAL=<µs> samples more often than bun's default 1000 µs.
  const interval = process.env.BENCH_CPU_PROF_INTERVAL ? [`--cpu-prof-interval=${process.env.BENCH_CPU_PROF_INTERVAL}`] : []
  const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, ...interval] : []
  return spawnAndWait([process.execPath, ...prof, join(ROOT, "src/main.ts")], env, /Agent Tape listening on http:\/\/127\.0\.0\.1:(\d+)\//)
}

/** The AI SDK peer of bench/peer-server.ts (SQLite in `dataDir`). */
export const startPeer = (dataDir: string): Promise<Child> =>
  spawnAndWait([process.execPath, join(ROOT, "bench/peer-server.ts")], { ...process.env, PEER_DB: join(dataDir, "peer.sqlite") }, /peer listening on (\d+)/)

/** The bare Bun websocket server of bench/floor-server.ts. */
export const startFloor = (): Promise<Child> =>
  spawnAndWait([process.execPath, join(ROOT, "bench/floor-server.ts")], { ...process.env }, /floor listening on (\d+)/)

interface Frame {
  readonly type: string
  readonly session?: string
  readonly id?: string
  readonly events?: ReadonlyArray<{ readonly type: string; readonly seq: number; readonly at: number; readonly text?: string }>
  readonly error?: { readonly code: string; readonly message: string }
  readonly code?: string
  readonly message?: string
}

/** One websocket client; `onFrame` sees every frame with its receipt time and its size in bytes. */
export class WsClient {
  private waiters: Array<() => void> = []
  readonly frames: Array<Frame> = []
  bytes = 0
  closed = false
  onFrame: ((f: Frame, at: number, bytes: number) => void) | null = null

  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (m) => {
      const at = performance.now()
      const data = String(m.data)
      const bytes = Buffer.byteLength(data)
      this.bytes += bytes
      const f = JSON.parse(data) as Frame
      // Keep control frames only: event frames are handled by onFrame, so memory stays flat in long runs.
      if (f.type !== "events") this.frames.push(f)
      this.onFrame?.(f, at, bytes)
      this.wake()
    }
    ws.onclose = () => {
      this.closed = true
      this.wake()
    }
  }

  static async connect(port: number): Promise<WsClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
    await new Promise<void>((res, rej) => {
      ws.onopen = () => res()
      ws.onerror = () => rej(new Error(`websocket to ${port} failed to open`))
    })
    return new WsClient(ws)
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  async until(pred: () => boolean, what: string, ms = 120_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!pred()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`)
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

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame))
  }

  /** hello → welcome; answers the session id. */
  async hello(session: string | null, after = 0): Promise<string> {
    const before = this.frames.length
    this.send({ type: "hello", session, after })
    let found: Frame | undefined
    await this.until(() => (found = this.frames.slice(before).find((f) => f.type === "welcome" || f.type === "error")) !== undefined, "welcome")
    if (found?.type !== "welcome" || found.session === undefined) throw new Error(`hello refused: ${JSON.stringify(found)}`)
    return found.session
  }

  private nextId = 0
  /** Sends a command; resolves on its ack (throws on nack). */
  async command(session: string, command: unknown): Promise<void> {
    const id = `b${++this.nextId}`
    this.send({ type: "command", id, session, command })
    let reply: Frame | undefined
    await this.until(() => (reply = this.frames.find((f) => (f.type === "ack" || f.type === "nack") && f.id === id)) !== undefined, `reply to ${id}`)
    if (reply?.type === "nack") throw new Error(`command refused: ${JSON.stringify(reply.error)}`)
  }

  close(): void {
    this.ws.close()
  }
}
