/**
 * The client's one owner of server state: the websocket (hello, catch-up, live events, commands with ack/nack),
 * the HTTP calls, the shown session and its tape, the notices, which `user:` actors are this page, and the
 * browser history of sessions. Components read these fields and call the methods; nothing else writes.
 */
import { Schema } from "effect"
import type { Command } from "../../../src/domain/Command.ts"
import { Hello } from "../../../src/server/Protocol.ts"
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"
import { type Api, api, ApiError, type Endpoint, endpointOf, type ModelInfo, socketUrl } from "./api.ts"
import type { Me } from "./actors.ts"
import { humanError } from "./errors.ts"
import { type CommandResult, Link, type LinkStatus } from "./link.ts"
import { Tape } from "./tape.svelte.ts"
import { Travel } from "./travel.svelte.ts"

export interface Notice {
  readonly id: number
  readonly kind: "error" | "info"
  readonly text: string
}

/** Information notices go away by themselves; errors stay until dismissed (the oldest go past MAX_NOTICES). */
const INFO_NOTICE_MS = 6_000
const MAX_NOTICES = 3
const SESSIONS_REFRESH_MS = 10_000
/** How many of this tab's own client ids are remembered (one per connection, kept across reloads of the tab). */
const MAX_ME = 64
const ME_KEY = "agent-tape:me"
/** Commands whose append always holds an event by the sender, so the acked seq names who the sender is. */
const SIGNED: ReadonlySet<Command["type"]> = new Set(["send_message", "approve", "reject", "interrupt", "cancel_queued"])

/** How a session change enters the browser history: a new entry (Back returns), the same entry, or none (Back/Forward itself). */
type HistoryMode = "push" | "replace" | "none"

/** The session named by the page's hash; a malformed escape is kept as written (the server will not know it). */
const sessionFromHash = (hash: string): string | null => {
  const m = /^#session=([^&]+)/.exec(hash)
  if (!m?.[1]) return null
  try {
    return decodeURIComponent(m[1])
  } catch {
    return m[1]
  }
}

/** An id the protocol can carry in a hello (the shared schema decides); any other link names no session. */
const isSessionId = Schema.is(Hello.fields.session)

export class Connection {
  status = $state<LinkStatus>("connecting")
  attempt = $state(0)
  info = $state.raw<ModelInfo | null>(null)
  sessions = $state.raw<ReadonlyArray<SessionSummary>>([])
  notices = $state.raw<ReadonlyArray<Notice>>([])
  /** The `user:` actors this tab has been (learned from its own acked commands). */
  me = $state.raw<Me>(new Set())
  /** A session the server said does not exist (the shown one, when it is the same id). */
  missing = $state<string | null>(null)

  readonly tape = new Tape()
  readonly travel = new Travel(this.tape)
  private readonly http: Api
  private readonly link: Link
  /** A hello with `session: null` was sent and its welcome (with the new id) is awaited. */
  private creating = false
  private decided = false
  private noticeId = 0
  private refreshTimer: number | null = null
  /** Acked seqs of this tab's commands whose events have not arrived yet. */
  private signed: Array<{ readonly session: string; readonly seq: number }> = []

  constructor(private readonly endpoint: Endpoint) {
    this.http = api(endpoint)
    this.me = loadMe()
    this.link = new Link(
      {
        connect: () => new WebSocket(socketUrl(this.endpoint)),
        setTimer: (f, ms) => window.setTimeout(f, ms),
        clearTimer: (h) => window.clearTimeout(h),
        random: Math.random,
        newId: () => crypto.randomUUID(),
        online: () => navigator.onLine
      },
      {
        status: (status, attempt) => {
          this.status = status
          this.attempt = attempt
        },
        open: () => this.helloCurrent(),
        welcome: (w) => {
          if (this.creating && this.tape.session === null) {
            this.creating = false
            this.tape.reset(w.session)
            this.tape.expect(w.head)
            this.writeHash(w.session, "replace")
            void this.refreshSessions()
            return
          }
          if (w.session !== this.tape.session) return
          if (this.missing === w.session) this.missing = null
          this.tape.expect(w.head)
          // The server's tape is shorter than ours: it is not the tape we folded (e.g. a memory store restarted).
          if (w.head < this.tape.head) {
            this.tape.reset(w.session)
            this.tape.expect(w.head)
            this.link.hello(w.session, 0)
          }
        },
        events: (f) => {
          if (f.session !== this.tape.session) return
          const r = this.tape.apply(f.events)
          if (r.gapAfter !== null) this.link.hello(f.session, r.gapAfter)
          if (this.signed.length > 0) this.learnMe()
        },
        error: (code, message) => {
          // The answer to a hello for an id the server does not have; a welcome for it later clears it.
          if (code === "unknown_session" && this.tape.session !== null && !this.tape.ready) this.missing = this.tape.session
          else this.notify("error", humanError(code, message))
        }
      }
    )
  }

  start(): void {
    this.link.start()
    window.addEventListener("online", () => this.link.retryNow())
    // Back and Forward move between sessions: the history entry is already there, so none is written.
    window.addEventListener("hashchange", () => {
      const s = sessionFromHash(location.hash)
      if (s !== null && s !== this.tape.session) this.show(s, "none")
    })
    this.refreshTimer = window.setInterval(() => {
      if (document.visibilityState === "visible") void this.refreshSessions()
    }, SESSIONS_REFRESH_MS)
    void this.http.info().then(
      (info) => (this.info = info),
      () => undefined
    )
    void this.pickInitial()
  }

  stop(): void {
    this.link.stop()
    if (this.refreshTimer !== null) window.clearInterval(this.refreshTimer)
  }

  private async pickInitial(): Promise<void> {
    const fromHash = sessionFromHash(location.hash)
    const list = await this.refreshSessions()
    this.decided = true
    this.show(fromHash ?? list[0]?.session ?? null, "replace")
  }

  /** True while the socket is open: what needs the server is enabled only then. */
  get online(): boolean {
    return this.status === "connected"
  }

  private helloCurrent(): void {
    if (!this.decided) return
    if (this.tape.session !== null) this.link.hello(this.tape.session, this.tape.head)
    else if (this.creating) this.link.hello(null, 0)
  }

  /** Shows a session (null: create one through the socket); a person's switch is a new history entry. */
  show(session: string | null, history: HistoryMode = "push"): void {
    this.decided = true
    this.travel.live()
    this.tape.reset(session)
    this.signed = []
    this.creating = session === null
    if (session !== null) this.writeHash(session, history)
    // A link no hello could carry (empty, too long) is answered here, as the server answers an unknown id.
    if (session !== null && !isSessionId(session)) this.missing = session
    else this.helloCurrent()
  }

  retryNow(): void {
    this.link.retryNow()
  }

  async refreshSessions(): Promise<ReadonlyArray<SessionSummary>> {
    try {
      this.sessions = await this.http.sessions()
    } catch (e) {
      if (this.status === "connected") this.notify("error", this.messageOf(e))
    }
    return this.sessions
  }

  /** Sends a command for the shown session. The caller shows a refusal where it belongs (see `act` for a notice). */
  async send(command: Command): Promise<CommandResult> {
    const session = this.tape.session
    if (session === null) return { ok: false, code: "no_session", message: "no session is open" }
    const r = await this.link.command(session, command)
    if (r.ok && SIGNED.has(command.type) && session === this.tape.session) {
      this.signed.push({ session, seq: r.seq })
      this.learnMe()
    }
    return r
  }

  /**
   * Sends a command whose refusal has no place of its own on screen: it becomes a notice, unless its code is in
   * `harmless` (a race that already gave what was asked, e.g. Stop after the turn ended by itself).
   */
  async act(command: Command, harmless: ReadonlyArray<string> = []): Promise<CommandResult> {
    const r = await this.send(command)
    if (!r.ok && !harmless.includes(r.code)) this.notify("error", humanError(r.code, r.message))
    return r
  }

  /** Creates a session and shows it; answers whether it worked (a failure is a notice). */
  async newSession(): Promise<boolean> {
    return this.guard(async () => {
      const id = await this.http.create()
      this.show(id)
      await this.refreshSessions()
    })
  }

  async importFile(file: File): Promise<void> {
    await this.guard(async () => {
      const id = await this.http.importTape(await file.text())
      this.show(id)
      await this.refreshSessions()
      this.notify("info", `Imported ${file.name} as a new session.`)
    })
  }

  async fork(seq: number): Promise<void> {
    const session = this.tape.session
    if (session === null) return
    await this.guard(async () => {
      const id = await this.http.fork(session, seq)
      this.show(id)
      await this.refreshSessions()
      this.notify("info", `Forked at event ${seq}.`)
    })
  }

  async exportCurrent(): Promise<void> {
    const session = this.tape.session
    if (session === null) return
    await this.guard(async () => {
      const text = await this.http.exportTape(session)
      const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }))
      const a = document.createElement("a")
      a.href = url
      a.download = `tape-${session}.jsonl`
      document.body.append(a)
      a.click()
      a.remove()
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000)
    })
  }

  dismiss(id: number): void {
    this.notices = this.notices.filter((n) => n.id !== id)
  }

  private notify(kind: Notice["kind"], text: string): void {
    const id = ++this.noticeId
    this.notices = [...this.notices.slice(-(MAX_NOTICES - 1)), { id, kind, text }]
    if (kind === "info") window.setTimeout(() => this.dismiss(id), INFO_NOTICE_MS)
  }

  private messageOf(e: unknown): string {
    return e instanceof ApiError ? humanError(e.code, e.message) : humanError("", e instanceof Error ? e.message : String(e))
  }

  private async guard(f: () => Promise<void>): Promise<boolean> {
    try {
      await f()
      return true
    } catch (e) {
      this.notify("error", this.messageOf(e))
      return false
    }
  }

  /**
   * Each acked command of this tab appended events ending at the acked seq, and one of them is by the sender; once
   * they are folded, the nearest `user:` actor at or before that seq is this tab.
   */
  private learnMe(): void {
    const events = this.tape.log.events
    const learned: Array<string> = []
    this.signed = this.signed.filter(({ session, seq }) => {
      if (session !== this.tape.session) return false
      if (seq > events.length) return true
      for (let i = seq - 1; i >= Math.max(0, seq - 64); i--) {
        const by = events[i]?.by
        if (by?.startsWith("user:")) {
          if (!this.me.has(by)) learned.push(by)
          break
        }
      }
      return false
    })
    if (learned.length === 0) return
    this.me = new Set([...this.me, ...learned].slice(-MAX_ME))
    try {
      sessionStorage.setItem(ME_KEY, JSON.stringify([...this.me]))
    } catch {
      // Storage may be full or disabled: "you" then lasts until the tab is reloaded.
    }
  }

  private writeHash(session: string, mode: HistoryMode): void {
    const hash = `#session=${encodeURIComponent(session)}`
    if (mode === "none" || location.hash === hash) return
    const url = `${location.pathname}${location.search}${hash}`
    if (mode === "push") history.pushState(null, "", url)
    else history.replaceState(null, "", url)
  }
}

/** This tab's earlier client ids (sessionStorage lives as long as the tab, across reloads); anything odd is ignored. */
const loadMe = (): Me => {
  try {
    const raw: unknown = JSON.parse(sessionStorage.getItem(ME_KEY) ?? "[]")
    return new Set(Array.isArray(raw) ? raw.filter((x): x is string => typeof x === "string" && x.startsWith("user:")).slice(-MAX_ME) : [])
  } catch {
    return new Set()
  }
}

export const connection = new Connection(endpointOf(location.href))
