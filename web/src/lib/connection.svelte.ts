/**
 * The client's one owner of server state: the websocket (hello, catch-up, live events, commands with ack/nack),
 * the HTTP calls, the shown session and its tape. Components read these fields and call the methods; nothing else writes.
 */
import type { Command } from "../../../src/domain/Command.ts"
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"
import { type Api, api, ApiError, type Endpoint, endpointOf, type ModelInfo, socketUrl } from "./api.ts"
import { type CommandResult, Link, type LinkStatus } from "./link.ts"
import { Tape } from "./tape.svelte.ts"
import { Travel } from "./travel.svelte.ts"

export interface Notice {
  readonly id: number
  readonly kind: "error" | "info"
  readonly text: string
}

const NOTICE_MS = 8_000
const SESSIONS_REFRESH_MS = 10_000

const sessionFromHash = (hash: string): string | null => {
  const m = /^#session=([^&]+)/.exec(hash)
  return m?.[1] ? decodeURIComponent(m[1]) : null
}

export class Connection {
  status = $state<LinkStatus>("connecting")
  attempt = $state(0)
  info = $state.raw<ModelInfo | null>(null)
  sessions = $state.raw<ReadonlyArray<SessionSummary>>([])
  notices = $state.raw<ReadonlyArray<Notice>>([])

  readonly tape = new Tape()
  readonly travel = new Travel(this.tape)
  private readonly http: Api
  private readonly link: Link
  /** A hello with `session: null` was sent and its welcome (with the new id) is awaited. */
  private creating = false
  private decided = false
  private noticeId = 0
  private refreshTimer: number | null = null

  constructor(private readonly endpoint: Endpoint) {
    this.http = api(endpoint)
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
            this.writeHash(w.session)
            void this.refreshSessions()
            return
          }
          if (w.session !== this.tape.session) return
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
        },
        error: (code, message) => this.notify("error", `${code}: ${message}`)
      }
    )
  }

  start(): void {
    this.link.start()
    window.addEventListener("online", () => this.link.retryNow())
    window.addEventListener("hashchange", () => {
      const s = sessionFromHash(location.hash)
      if (s !== null && s !== this.tape.session) this.show(s)
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
    this.show(fromHash ?? list[0]?.session ?? null)
  }

  private helloCurrent(): void {
    if (!this.decided) return
    if (this.tape.session !== null) this.link.hello(this.tape.session, this.tape.head)
    else if (this.creating) this.link.hello(null, 0)
  }

  /** Shows a session (null: create one through the socket). */
  show(session: string | null): void {
    this.decided = true
    this.travel.live()
    this.tape.reset(session)
    this.creating = session === null
    if (session !== null) this.writeHash(session)
    this.helloCurrent()
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

  /** Sends a command for the shown session; failures are also posted as notices. */
  async send(command: Command): Promise<CommandResult> {
    const session = this.tape.session
    if (session === null) return { ok: false, code: "no_session", message: "no session is open" }
    const r = await this.link.command(session, command)
    if (!r.ok) this.notify("error", `${command.type} refused — ${r.message}`)
    return r
  }

  async newSession(): Promise<void> {
    await this.guard(async () => {
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
    this.notices = [...this.notices.slice(-4), { id, kind, text }]
    window.setTimeout(() => this.dismiss(id), NOTICE_MS)
  }

  private messageOf(e: unknown): string {
    return e instanceof ApiError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e)
  }

  private async guard(f: () => Promise<void>): Promise<void> {
    try {
      await f()
    } catch (e) {
      this.notify("error", this.messageOf(e))
    }
  }

  private writeHash(session: string): void {
    const hash = `#session=${encodeURIComponent(session)}`
    if (location.hash !== hash) history.replaceState(null, "", `${location.pathname}${location.search}${hash}`)
  }
}

export const connection = new Connection(endpointOf(location.href))
