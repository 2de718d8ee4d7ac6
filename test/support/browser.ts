/**
 * Browser-test support: Debian's chromium through playwright-core (never a downloaded browser), the real server
 * process (`bun src/main.ts`) on a free port with a scripted model, the visualizer built into a temp folder, and
 * the suite harness the web tests share (per-test servers and pages, failure screenshots, page helpers).
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type BrowserContext, chromium, type Page, type WebSocketRoute } from "playwright-core"
import { renderReply } from "../../src/llm/offline.ts"
import { ROOT, spawnUntil } from "./process.ts"
import { type FakeProvider, openAiEvents, startFake } from "./providers.ts"
import { tempDir } from "./server.ts"

export { ROOT, tempDir }
export type { FakeProvider }
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
  // The developer's own provider settings never reach a test's server; a test may set its own (a fake endpoint).
  const inherited = Object.entries(process.env).filter(
    (kv): kv is [string, string] => kv[1] !== undefined && !["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "LLM_BASE_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "TAPE_TOKEN", "TAPE_CONFIG", "TAPE_MCP_CONFIG"].includes(kv[0])
  )
  const env: Record<string, string> = {
    ...Object.fromEntries(inherited),
    HOST: "127.0.0.1",
    PORT: String(opts.port ?? 0),
    TAPE_STORE: opts.store ?? "memory",
    TAPE_WEB_ROOT: opts.webRoot,
    BAML_LOG: "warn",
    ...opts.env
  }
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
    // The Copy buttons are checked by reading the clipboard back.
    permissions: ["clipboard-read", "clipboard-write"],
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

/** A phone, as the screenshots were taken. */
export const MOBILE = { width: 390, height: 844 } as const
export const LONG = 60_000
/** The two sizes a feature is tried at where the layout matters. */
export const SIZES = [
  { name: "desktop", mobile: false },
  { name: "mobile", mobile: true }
] as const

export interface Suite {
  /** A browser test: on failure every page of it is saved as FAILED-<test>-<n>.png, with its servers' output. */
  readonly e2e: (name: string, body: () => Promise<void>) => void
  /** Starts a server for the running test (stopped when the test ends). */
  readonly serve: (
    script: unknown,
    extra?: { store?: "memory" | "sqlite"; data?: string; port?: number; env?: Readonly<Record<string, string>> }
  ) => Promise<RunningServer>
  /** A page of the running test (closed when it ends); `mobile` gives it a 390 px wide viewport. */
  readonly newPage: (opts?: { readonly mobile?: boolean }) => Promise<Page>
  /** A page on `url`, connected, with its session's catch-up folded. */
  readonly open: (url: string, opts?: { readonly mobile?: boolean }) => Promise<Page>
  /** A temp folder removed after the suite. */
  readonly temp: (prefix: string) => string
}

/** Registers the suite's beforeAll/afterAll (build the visualizer once, one browser) and answers its harness. */
export const browserSuite = (): Suite => {
  let webRoot = ""
  let context: BrowserContext | null = null
  let closeBrowser: () => Promise<void> = async () => undefined
  const temps: Array<string> = []
  let servers: Array<RunningServer> = []
  let pages: Array<Page> = []
  let pageErrors: Array<string> = []

  beforeAll(async () => {
    webRoot = await buildWeb()
    temps.push(webRoot)
    const b = await launchBrowser()
    context = b.context
    closeBrowser = b.close
  }, LONG)

  afterAll(async () => {
    await closeBrowser()
    for (const t of temps) rmSync(t, { recursive: true, force: true })
  })

  const e2e = (name: string, body: () => Promise<void>) =>
    test(
      name,
      async () => {
        pages = []
        pageErrors = []
        servers = []
        try {
          await body()
          expect(pageErrors).toEqual([])
        } catch (e) {
          const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)
          for (const [i, p] of pages.entries()) if (!p.isClosed()) await p.screenshot({ path: screenshotPath(`FAILED-${slug}-${i}`) }).catch(() => undefined)
          const logs = servers.map((s) => s.output().slice(-2_000)).join("\n---\n")
          throw new Error(`${e instanceof Error ? e.message : String(e)}\nserver output (tail):\n${logs}`)
        } finally {
          for (const p of pages) if (!p.isClosed()) await p.close()
          for (const s of servers) await s.stop()
        }
      },
      LONG
    )

  const serve: Suite["serve"] = async (script, extra = {}) => {
    const s = await startServer({ webRoot, script, ...extra })
    servers.push(s)
    return s
  }

  const newPage: Suite["newPage"] = async (opts = {}) => {
    if (context === null) throw new Error("the browser is not running")
    const page = await context.newPage()
    pages.push(page)
    page.on("pageerror", (e) => pageErrors.push(e.message))
    if (opts.mobile) await page.setViewportSize(MOBILE)
    return page
  }

  const open: Suite["open"] = async (url, opts = {}) => {
    const page = await newPage(opts)
    await page.goto(url)
    await connected(page)
    await ready(page)
    return page
  }

  const temp = (prefix: string) => {
    const d = tempDir(prefix)
    temps.push(d)
    return d
  }

  return { e2e, serve, newPage, open, temp }
}

// Page helpers: what a person sees and does, by test id.
export const connected = (page: Page) => page.locator('[data-testid="status"][data-status="connected"]').waitFor()
/** The shown session's catch-up is folded (a fresh server's first session is created by the hello). */
export const ready = (page: Page) => page.locator('[data-testid="messages"][data-ready="true"]').waitFor()
export const composer = (page: Page) => page.getByTestId("composer")
export const send = async (page: Page, text: string) => {
  await composer(page).fill(text)
  await composer(page).press("Enter")
}
export const assistant = (page: Page, i: number) => page.getByTestId("assistant-message").nth(i)
export const waitCompleted = (page: Page, i: number, text: string) =>
  page.locator('[data-testid="assistant-message"][data-status="completed"]').nth(i).filter({ hasText: text }).waitFor()
export const sessionOf = (page: Page) => decodeURIComponent(new URL(page.url()).hash.replace(/^#session=/, ""))
export const shot = (page: Page, name: string) => page.screenshot({ path: screenshotPath(name) })
export const texts = (page: Page, testId: string) => page.getByTestId(testId).allInnerTexts()
export const countIs = (page: Page, testId: string, n: number) =>
  page.waitForFunction(([id, want]) => document.querySelectorAll(`[data-testid="${id}"]`).length === want, [testId, n] as const, { polling: 50 })
/** The test id (or tag) of the focused element. */
export const focused = (page: Page) =>
  page.evaluate(() => {
    const a = document.activeElement
    return a === null || a === document.body ? "body" : (a.getAttribute("data-testid") ?? a.tagName.toLowerCase())
  })

/** Scripted-model turns (DESIGN.md §6). */
export const slowText =
  "This reply streams slowly so that there is time to act while it runs: two characters at a time, every " +
  "twenty-five milliseconds, for several seconds, which is far longer than any step of the test takes."
export const evalTurn = (code: string, text = "Let me compute that with the eval tool.") => ({
  text,
  toolCalls: [{ tool: "eval", args: { code }, description: "Evaluate the expression" }],
  chunkChars: 4,
  delayMs: 5
})
export const answer = (text: string) => ({ text, chunkChars: 4, delayMs: 5 })
export const slow = (text = slowText) => ({ text, chunkChars: 2, delayMs: 25 })

/** A server and a page with two finished exchanges: "alpha question" → "Alpha answer.", "beta question" → "Beta answer.". */
export const twoExchanges = async (suite: Suite): Promise<{ readonly server: RunningServer; readonly page: Page }> => {
  const server = await suite.serve({ turns: [answer("Alpha answer."), answer("Beta answer.")] })
  const page = await suite.open(server.url)
  await send(page, "alpha question")
  await waitCompleted(page, 0, "Alpha answer")
  await send(page, "beta question")
  await waitCompleted(page, 1, "Beta answer")
  return { server, page }
}

/** Routes the page's websocket through the test, which can hold back `events` frames (acks and the rest pass). */
export const holdableSocket = async (page: Page) => {
  let holding = false
  const held: Array<string> = []
  const waiters: Array<() => void> = []
  let client: WebSocketRoute | null = null
  await page.routeWebSocket(/\/ws/, (ws) => {
    const server = ws.connectToServer()
    ws.onMessage((m) => server.send(m))
    server.onMessage((m) => {
      if (holding && typeof m === "string" && m.startsWith('{"type":"events"')) {
        held.push(m)
        for (const w of waiters.splice(0)) w()
      } else ws.send(m)
    })
    client = ws
  })
  return {
    hold: () => {
      holding = true
    },
    release: () => {
      holding = false
      for (const m of held.splice(0)) client?.send(m)
    },
    /** Resolves once a held frame contains `text` (the server did it; the page has not heard yet). */
    heldUntil: async (text: string) => {
      while (!held.some((m) => m.includes(text))) await new Promise<void>((wake) => waiters.push(wake))
    }
  }
}

/** The text of the last user message of an OpenAI-style request body (content a string or text parts). */
export const lastUserText = (body: Record<string, unknown>): string => {
  const messages = Array.isArray(body["messages"]) ? body["messages"] : []
  for (let i = messages.length - 1; i >= 0; i--) {
    const m: unknown = messages[i]
    if (typeof m !== "object" || m === null || !("role" in m) || m.role !== "user" || !("content" in m)) continue
    const c = m.content
    if (typeof c === "string") return c
    if (Array.isArray(c)) return c.map((p: unknown) => (typeof p === "object" && p !== null && "text" in p && typeof p.text === "string" ? p.text : "")).join("")
  }
  return ""
}

/**
 * A fake OpenAI-compatible provider for the real server (`LLM_BASE_URL=<url>/v1`), in the test's own process: request
 * n is answered by `reply(n, body)` — a reply text streamed in the provider's documented format, or an HTTP error.
 * By default it answers "You said: <the last user message>", so each branch of a conversation answers its own text.
 */
export const fakeModel = (
  reply: (n: number, body: Record<string, unknown>) => { readonly text: string } | { readonly status: number; readonly error: string } = (_, body) => ({
    text: `You said: ${lastUserText(body).trim()}`
  })
): FakeProvider =>
  startFake((n, body) => {
    const r = reply(n, body)
    if ("status" in r) {
      return { status: r.status, headers: { "content-type": "application/json" }, steps: [{ write: JSON.stringify({ error: { message: r.error, type: "invalid_request_error" } }) }] }
    }
    return { steps: [{ write: openAiEvents(renderReply(r.text, []), { chunkChars: 6, usage: { input: 10, output: 5 } }) }] }
  })

/** The server environment that makes `fake` the default model (named `model`), with the built-in model as a second choice. */
export const fakeModelEnv = (fake: FakeProvider, model = "fake-model"): Record<string, string> => ({ LLM_BASE_URL: `${fake.url}/v1`, LLM_MODEL: model })
