/**
 * Browser-test support: Debian's chromium through playwright-core (never a downloaded browser), the real server
 * process (`bun src/main.ts`) on a free port with a scripted model, and the visualizer built into a temp folder.
 */
import { type Subprocess } from "bun"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { type BrowserContext, chromium } from "playwright-core"

export const ROOT = resolve(import.meta.dir, "../..")
export const CHROMIUM = "/usr/bin/chromium"
export const ARTIFACTS = join(ROOT, "test/artifacts")

/** Why browser tests cannot run here, or null when they can. */
export const browserUnavailable = (): string | null =>
  existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (install Debian's: apt-get install -y chromium)`

export const tempDir = (prefix: string): string => mkdtempSync(join(tmpdir(), `tape-${prefix}-`))

/** Builds the visualizer into a fresh folder (so a test never races a developer's web/dist) and returns it. */
export const buildWeb = async (): Promise<string> => {
  const out = tempDir("web")
  const proc = Bun.spawn([join(ROOT, "node_modules/.bin/vite"), "build", "--config", "web/vite.config.ts", "--outDir", out, "--emptyOutDir", "--logLevel", "warn"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe"
  })
  const code = await proc.exited
  if (code !== 0) throw new Error(`vite build failed (${code}):\n${await new Response(proc.stderr).text()}`)
  return out
}

export interface ServerOptions {
  readonly webRoot: string
  /** A scripted model (DESIGN.md §6), written to a temp file. */
  readonly script?: unknown
  readonly store?: "memory" | "sqlite"
  /** Folder of the SQLite file (with store sqlite). */
  readonly data?: string
  /** 0 for any free port. */
  readonly port?: number
  readonly env?: Readonly<Record<string, string>>
}

export interface RunningServer {
  readonly url: string
  readonly port: number
  /** Everything the process printed so far (for failure messages). */
  readonly output: () => string
  /** Stops the process (SIGTERM: graceful; SIGKILL: as if it crashed) and waits for it to exit. */
  readonly stop: (signal?: "SIGTERM" | "SIGKILL") => Promise<void>
}

const LISTENING = /Agent Tape listening on (http:\/\/\S+)/

/** Starts `bun src/main.ts` and resolves once it prints its URL. */
export const startServer = async (opts: ServerOptions): Promise<RunningServer> => {
  const inherited = Object.entries(process.env).filter((kv): kv is [string, string] => kv[1] !== undefined)
  const env: Record<string, string> = {
    ...Object.fromEntries(inherited),
    HOST: "127.0.0.1",
    PORT: String(opts.port ?? 0),
    TAPE_STORE: opts.store ?? "memory",
    TAPE_WEB_ROOT: opts.webRoot,
    BAML_LOG: "warn",
    ...opts.env
  }
  for (const k of ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "LLM_BASE_URL", "AWS_ACCESS_KEY_ID", "TAPE_TOKEN"]) delete env[k]
  if (opts.data) env.TAPE_DATA = opts.data
  if (opts.script !== undefined) {
    const dir = tempDir("script")
    const file = join(dir, "script.json")
    writeFileSync(file, JSON.stringify(opts.script))
    env.LLM_SCRIPT = file
  }
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([process.execPath, "src/main.ts"], { cwd: ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
  let text = ""
  const drain = async (stream: ReadableStream<Uint8Array>, onText: () => void) => {
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      text += decoder.decode(value, { stream: true })
      onText()
    }
  }
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within 30 s:\n${text}`)), 30_000)
    const check = () => {
      const m = LISTENING.exec(text)
      if (m?.[1]) {
        clearTimeout(timer)
        resolveUrl(m[1])
      }
    }
    void drain(proc.stdout, check)
    void drain(proc.stderr, check)
    void proc.exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`the server exited (${code}) before it listened:\n${text}`))
    })
  })
  return {
    url,
    port: Number(new URL(url).port),
    output: () => text,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill(signal)
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000)
      await proc.exited
      clearTimeout(timer)
    }
  }
}

/** Launches chromium headless with a fresh profile. */
export const launchBrowser = async (): Promise<{ readonly context: BrowserContext; readonly close: () => Promise<void> }> => {
  const profile = tempDir("profile")
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

export const screenshotPath = (name: string): string => {
  mkdirSync(ARTIFACTS, { recursive: true })
  return join(ARTIFACTS, `${name}.png`)
}
