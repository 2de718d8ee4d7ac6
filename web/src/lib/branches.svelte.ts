/**
 * The branches of the shown session's messages, kept for the chat's "‹ 2 / 3 ›": what is known of each session's
 * origin (from summaries seen, the shown tape, or the first line of a tape) and of each root's forks (one
 * `?forkedFrom=` page). Written only by the connection module (`learn`, `sync`, `forget`); components read `sets`.
 */
import type { SessionState } from "../../../src/domain/state.ts"
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"
import { type Api, ApiError } from "./api.ts"
import { branchRoot, branchSet, type BranchSet, type OriginInfo, type RootResult } from "./branches.ts"

/** Forks of one root asked for at once (the server's page maximum). */
const FORKS_PAGE = 200

export class BranchIndex {
  /** The branches of each user message of the shown session, by message id (only messages that have a user item). */
  sets = $state.raw<ReadonlyMap<string, BranchSet>>(new Map())

  private readonly origins = new Map<string, OriginInfo>()
  private readonly forks = new Map<string, ReadonlyArray<SessionSummary>>()
  /** Each sync has a number; a slower, older one does not overwrite a newer one's answer. */
  private generation = 0

  constructor(private readonly http: Api) {}

  /** Summaries seen anywhere (the list, a search, a forks page) say where each session came from. */
  learn(summaries: ReadonlyArray<SessionSummary>): void {
    for (const s of summaries) this.origins.set(s.session, { kind: "known", origin: s.forkedFrom ?? null })
  }

  /** A session was deleted (its forks keep their copies; branches are traced from them now). */
  gone(session: string): void {
    this.origins.set(session, { kind: "gone" })
    this.forks.delete(session)
  }

  /** The forks of `root` changed (a branch was made): the next sync asks again. */
  forget(root: string): void {
    this.forks.delete(root)
  }

  /** The root of position 1..`seq` of `session`, fetching the origins it needs. */
  async rootOf(session: string, seq: number): Promise<Extract<RootResult, { kind: "root" }>> {
    for (;;) {
      const r = branchRoot(session, seq, (s) => this.origins.get(s))
      if (r.kind === "root") return r
      await this.loadOrigin(r.session)
    }
  }

  /**
   * Recomputes the branches of the shown session's user messages from its folded state; `refresh` asks for the
   * roots' forks again (another tab may have made a branch).
   */
  async sync(session: string | null, state: SessionState, refresh = false): Promise<void> {
    const generation = ++this.generation
    if (session === null || state.head === 0) {
      this.sets = new Map()
      return
    }
    this.origins.set(session, { kind: "known", origin: state.counters.forkedFrom })
    // Queued messages entered with their flush, not right after a fork point: only messages added when idle branch.
    // Each message's branch point is the seq just before it, except the first one said after this session's own fork
    // point: events the fork appended (closing what was open, a rename) stand between them, and it branches there.
    const forkedAt = state.counters.forkedFrom?.seq ?? null
    const messages: Array<{ readonly messageId: string; readonly at: number; readonly before: number }> = []
    let before = 0
    let afterFork = false
    for (const item of state.messages.items) {
      if (item.kind !== "user") continue
      const first = forkedAt !== null && item.seq > forkedAt && !afterFork
      if (forkedAt !== null && item.seq > forkedAt) afterFork = true
      if (!item.wasQueued) messages.push({ messageId: item.messageId, at: first && forkedAt !== null ? forkedAt : item.seq - 1, before })
      before++
    }
    try {
      const roots = new Map<string, Extract<RootResult, { kind: "root" }>>()
      for (const m of messages) roots.set(m.messageId, await this.rootOf(session, m.at))
      const wanted = new Set([...roots.values()].map((r) => r.root))
      for (const root of wanted) {
        if (refresh || !this.forks.has(root)) await this.loadForks(root)
      }
      if (generation !== this.generation) return
      const sets = new Map<string, BranchSet>()
      for (const m of messages) {
        const r = roots.get(m.messageId)
        if (r) sets.set(m.messageId, branchSet(r, m.at, m.before, this.forks.get(r.root) ?? []))
      }
      this.sets = sets
    } catch {
      // The server could not say (a network failure): the branches stay as they were, and the next sync tries again.
    }
  }

  private async loadOrigin(session: string): Promise<void> {
    try {
      this.origins.set(session, { kind: "known", origin: await this.http.origin(session) })
    } catch (e) {
      if (e instanceof ApiError && e.code === "unknown_session") this.gone(session)
      // A tape this page cannot read is traced no further, rather than asked for again and again.
      else if (e instanceof ApiError && e.code === "bad_response") this.origins.set(session, { kind: "known", origin: null })
      else throw e
    }
  }

  private async loadForks(root: string): Promise<void> {
    try {
      const forks = await this.http.sessions({ forkedFrom: root, limit: FORKS_PAGE })
      this.learn(forks)
      this.forks.set(root, forks)
    } catch (e) {
      if (e instanceof ApiError && e.code === "unknown_session") this.forks.set(root, [])
      else throw e
    }
  }
}
