/**
 * Browser-test support: Debian's chromium through playwright-core (never a downloaded browser), the real server
 * process (`bun src/main.ts`) on a free port with a scripted model, and the visualizer built into a temp folder.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type BrowserContext, chromium } from "playwright-core"
import { ROOT, spawnUntil } from "./process.ts"
import { tempDir } from "./server.ts"

export { ROOT, tempDir }
export const CHROMIUM = "/usr/bin/chromium"
export const ARTIFACTS = join(ROOT, "test/artifacts")

/** Why browser tests cannot run here, or null when they can. */
export const browserUnavailable = (): string | null =>
  existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (install Debian's: apt-get install -y chromium)`


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
  const spawned = await spawnUntil([process.execPath, "src/main.ts"], env, /Agent Tape listening on (http:\/\/\S+)/)
  const url = spawned.match[1]!
  return {
    url,
    port: Number(new URL(url).port),
    output: spawned.output,
    stop: async (signal = "SIGTERM") => {
      await spawned.stop(signal)
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
