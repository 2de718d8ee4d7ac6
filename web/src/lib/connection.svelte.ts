/**
 * The client's one owner of server state: the websocket (hello, catch-up, live events, commands with ack/nack),
 * the HTTP calls, the shown session and its tape (or a draft: a new chat that exists on the server only once its
 * first message is sent), the notices, which `user:` actors are this page, the sessions list and its search, the
 * branches of the shown messages, the tool catalogue and the browser history of sessions. Components read these
 * fields and call the methods; nothing else writes.
 */
import { Schema } from "effect"
import type { Command } from "../../../src/domain/Command.ts"
import { Hello } from "../../../src/server/Protocol.ts"
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"
import { type Api, api, ApiError, type Endpoint, endpointOf, type ModelInfo, type RenderedPrompt, socketUrl, type ToolCatalogue } from "./api.ts"
import { BranchIndex } from "./branches.svelte.ts"
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
const SIGNED: ReadonlySet<Command["type"]> = new Set(["send_message", "approve", "reject", "interrupt", "cancel_queued", "rename", "choose_model"])
/** Rendered requests kept for the memory tab (each is one HTTP call and a few KB). */
const MAX_PROMPTS = 16

/** What became of a request to delete a session. */
export type DeleteResult = { readonly ok: true } | { readonly ok: false; readonly busy: boolean; readonly message: string }

/** The search of the sessions list: what was asked, and the sessions found (null until answered). */
export interface SessionSearch {
  readonly q: string
  readonly results: ReadonlyArray<SessionSummary> | null
}

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
  /** A new chat is shown that the server does not have yet: its first message creates it (no empty sessions). */
  draft = $state(false)
  /** The model picked in a draft, chosen on the session when it is created. */
  draftModel = $state<string | null>(null)
  /** The tool catalogue and MCP servers (`/api/tools`), as last fetched. */
  tools = $state.raw<ToolCatalogue | null>(null)
  /** The sessions list's search, when one is typed. */
  search = $state.raw<SessionSearch | null>(null)

  readonly tape = new Tape()
  readonly travel = new Travel(this.tape)
  readonly branches: BranchIndex
  private readonly http: Api
  private readonly link: Link
  private decided = false
  private readonly prompts = new Map<string, Promise<RenderedPrompt>>()
  private toolsRequest: Promise<void> | null = null
  private noticeId = 0
  private refreshTimer: number | null = null
  /** Acked seqs of this tab's commands whose events have not arrived yet. */
  private signed: Array<{ readonly session: string; readonly seq: number }> = []

  constructor(private readonly endpoint: Endpoint) {
    this.http = api(endpoint)
    this.branches = new BranchIndex(this.http)
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
        open: () => {
          this.helloCurrent()
          // The catalogue could not be read while the server was away: the cards' sources and the edit check need it.
          if (this.tools === null) void this.loadTools()
        },
        welcome: (w) => {
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
          // A new message (or the tape's start) may have branches: a message's siblings are other sessions.
          if (f.events.some((e) => e.type === "UserMessageAdded" || e.type === "SessionCreated")) this.syncBranches()
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
      if (s === null ? !this.draft : s !== this.tape.session) this.show(s, "none")
    })
    this.refreshTimer = window.setInterval(() => {
      if (document.visibilityState !== "visible") return
      void this.refreshSessions()
      this.syncBranches(true)
    }, SESSIONS_REFRESH_MS)
    void this.http.info().then(
      (info) => (this.info = info),
      () => undefined
    )
    void this.loadTools()
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
  }

  /** Shows a session, or (null) a draft: a new chat the first message creates. A person's switch is a new history entry. */
  show(session: string | null, history: HistoryMode = "push"): void {
    this.decided = true
    this.travel.live()
    this.tape.reset(session)
    this.signed = []
    this.draft = session === null
    this.draftModel = null
    this.branches.sets = new Map()
    this.writeHash(session, history)
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
      this.branches.learn(this.sessions)
    } catch (e) {
      if (this.status === "connected") this.notify("error", this.messageOf(e))
    }
    const search = this.search
    if (search !== null) void this.searchSessions(search.q)
    return this.sessions
  }

  /** Searches the sessions by title and by what a user wrote; an empty text ends the search. */
  async searchSessions(q: string): Promise<void> {
    const text = q.trim()
    if (text === "") {
      this.search = null
      return
    }
    if (this.search?.q !== text) this.search = { q: text, results: null }
    try {
      const results = await this.http.sessions({ q: text })
      this.branches.learn(results)
      // A later search (the person kept typing) owns the list.
      if (this.search?.q === text) this.search = { q: text, results }
    } catch (e) {
      if (this.search?.q === text) this.search = { q: text, results: [] }
      this.notify("error", this.messageOf(e))
    }
  }

  /**
   * Sends a command for the shown session. In a draft, a message first creates the session (and chooses the model
   * picked in the draft), so a new chat exists on the server only once something is said in it. The caller shows a
   * refusal where it belongs (see `act` for a notice).
   */
  async send(command: Command): Promise<CommandResult> {
    if (this.draft && command.type === "send_message") return this.sendFirst(command)
    if (this.draft && command.type === "choose_model") {
      this.draftModel = command.model
      return { ok: true, seq: 0 }
    }
    const session = this.tape.session
    if (session === null) return { ok: false, code: "no_session", message: "no session is open" }
    return this.sendTo(session, command)
  }

  /** Sends a command for any session (rename, stop, delete from the list); signed ones teach who "you" are. */
  async sendTo(session: string, command: Command): Promise<CommandResult> {
    const r = await this.link.command(session, command)
    if (r.ok && SIGNED.has(command.type) && session === this.tape.session) {
      this.signed.push({ session, seq: r.seq })
      this.learnMe()
    }
    return r
  }

  private async sendFirst(command: Extract<Command, { type: "send_message" }>): Promise<CommandResult> {
    if (!this.online) return { ok: false, code: "disconnected", message: "not connected to the server" }
    const model = this.draftModel
    let id: string
    try {
      id = await this.http.create()
    } catch (e) {
      return refusalOf(e)
    }
    // The draft's history entry becomes the session's: Back goes where it went before "+ New".
    if (this.draft) this.show(id, "replace")
    if (model !== null) await this.sendTo(id, { type: "choose_model", model })
    const r = await this.sendTo(id, command)
    void this.refreshSessions()
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

  /** Shows a new chat (a draft: created on the server by its first message); answers whether it is shown. */
  async newSession(): Promise<boolean> {
    if (!this.draft) this.show(null)
    return true
  }

  /**
   * Edits the user message at `seq` of the shown session and sends it again: a fork just before it (of the session
   * that first wrote that prefix, so every alternative of the message is a fork of one root) gets the new text.
   * Nothing is lost: the old line stays its own session, and the new one is shown.
   */
  async editMessage(seq: number, text: string): Promise<CommandResult> {
    const session = this.tape.session
    if (session === null) return { ok: false, code: "no_session", message: "no session is open" }
    if (text.trim() === "") return { ok: false, code: "empty_message", message: "a message needs some text" }
    const at = seq - 1
    try {
      const root = (await this.branches.rootOf(session, at)).root
      let id: string
      try {
        id = await this.http.fork(root, at)
      } catch (e) {
        // The root went away meanwhile: the shown session has the same prefix.
        if (!(e instanceof ApiError && e.code === "unknown_session") || root === session) throw e
        this.branches.gone(root)
        id = await this.http.fork(session, at)
      }
      this.branches.forget(root)
      this.branches.forget(session)
      this.show(id)
      const r = await this.sendTo(id, { type: "send_message", text })
      // A first message gives a new chat its title; a branch of it is named after its own first message.
      if (r.ok && at === 1) await this.sendTo(id, { type: "rename", title: `${text.replace(/\s+/g, " ").trim().slice(0, 60)} (fork @1)` })
      void this.refreshSessions()
      return r
    } catch (e) {
      return refusalOf(e)
    }
  }

  /** Renames any session. */
  rename(session: string, title: string): Promise<CommandResult> {
    return this.sendTo(session, { type: "rename", title }).then((r) => {
      if (r.ok) void this.refreshSessions()
      return r
    })
  }

  /**
   * Deletes a session for good (its forks and imports keep their copies). A running one is refused as busy: the
   * caller may offer to stop it first (`stopSession`). The shown one gives way to the newest other session.
   */
  async deleteSession(session: string): Promise<DeleteResult> {
    try {
      await this.http.remove(session)
    } catch (e) {
      const busy = e instanceof ApiError && e.code === "busy"
      return { ok: false, busy, message: busy ? "It is running or waiting for an approval." : this.messageOf(e) }
    }
    this.branches.gone(session)
    this.sessions = this.sessions.filter((s) => s.session !== session)
    const search = this.search
    if (search?.results) this.search = { q: search.q, results: search.results.filter((s) => s.session !== session) }
    if (session === this.tape.session) this.show(this.sessions[0]?.session ?? null, "replace")
    void this.refreshSessions()
    return { ok: true }
  }

  /** Stops whatever runs in a session (any session, not only the shown one); nothing running counts as done. */
  async stopSession(session: string): Promise<CommandResult> {
    const r = await this.sendTo(session, { type: "interrupt", reason: "stopped by the user to delete the session" })
    return !r.ok && r.code === "nothing_to_interrupt" ? { ok: true, seq: 0 } : r
  }

  /** Fetches the tool catalogue again (the tools panel does on open: MCP servers change state). */
  loadTools(): Promise<void> {
    // One request at a time: start, a reconnect and the panel may all ask at once.
    this.toolsRequest ??= this.http.tools().then(
      (tools) => {
        this.tools = tools
      },
      (e: unknown) => {
        if (this.tools === null && this.status === "connected") this.notify("error", this.messageOf(e))
      }
    ).finally(() => (this.toolsRequest = null))
    return this.toolsRequest
  }

  /** The request the turn at `seq` of `session` sent, rendered by the server; one fetch per turn (`key`). */
  prompt(session: string, seq: number, key: string): Promise<RenderedPrompt> {
    const id = `${session}\u0000${key}`
    const hit = this.prompts.get(id)
    if (hit) return hit
    const p = this.http.prompt(session, seq)
    this.prompts.set(id, p)
    // A failed fetch is not kept: the next look asks again.
    p.catch(() => this.prompts.delete(id))
    if (this.prompts.size > MAX_PROMPTS) this.prompts.delete(this.prompts.keys().next().value ?? id)
    return p
  }

  /** Recomputes the shown messages' branches (and with `refresh`, asks for the roots' forks again). */
  syncBranches(refresh = false): void {
    void this.branches.sync(this.tape.session, this.tape.log.state, refresh)
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
      this.branches.forget(session)
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

  /** The page's hash names the shown session (none for a draft). */
  private writeHash(session: string | null, mode: HistoryMode): void {
    const hash = session === null ? "" : `#session=${encodeURIComponent(session)}`
    if (mode === "none" || location.hash === hash) return
    const url = `${location.pathname}${location.search}${hash}`
    if (mode === "push") history.pushState(null, "", url)
    else history.replaceState(null, "", url)
  }
}

/** A failed HTTP call as a command's refusal, so callers show both one way. */
const refusalOf = (e: unknown): CommandResult =>
  e instanceof ApiError ? { ok: false, code: e.code, message: e.message } : { ok: false, code: "network", message: e instanceof Error ? e.message : String(e) }

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
