/**
 * Branches of a conversation, from the sessions' fork points (DESIGN.md §5): every branch is its own session, and
 * the branches of a user message are the sessions whose tapes share everything before it and differ from it on.
 * Editing a message forks the session just before it; forks of forks are traced back to the session that first
 * wrote that shared prefix (the branch's *root*), so every alternative of one message is a direct fork of its root.
 * Pure: the caller says what it knows of each session's origin and of each root's forks.
 */
import type { SessionSummary } from "../../../src/domain/projections/summaryTypes.ts"

export interface Origin {
  readonly session: string
  readonly seq: number
}

/**
 * What is known of a session's origin: forked from `origin` (null: it was not), or `gone` (deleted: its branches
 * are traced no further up). `undefined` from the lookup: not known yet (the caller fetches it).
 */
export type OriginInfo = { readonly kind: "known"; readonly origin: Origin | null } | { readonly kind: "gone" }

/** A fork chain longer than this is not followed (a tape from elsewhere could claim anything). */
const MAX_CHAIN = 64

export type RootResult =
  /** `root` wrote the prefix up to `seq`; `child` is the chain's session just below it (null when it is `root`). */
  | { readonly kind: "root"; readonly root: string; readonly child: { readonly session: string; readonly seq: number } | null }
  /** The origin of `session` is needed first. */
  | { readonly kind: "unknown"; readonly session: string }

/** The session that first wrote positions 1..`seq` of `session`'s tape (`seq` ≥ 0). */
export const branchRoot = (session: string, seq: number, originOf: (session: string) => OriginInfo | undefined): RootResult => {
  let current = session
  let child: { session: string; seq: number } | null = null
  const seen = new Set<string>([session])
  for (let i = 0; i < MAX_CHAIN; i++) {
    const info = originOf(current)
    if (info === undefined) return { kind: "unknown", session: current }
    if (info.kind === "gone" || info.origin === null || seq > info.origin.seq || seen.has(info.origin.session)) break
    const parent = originOf(info.origin.session)
    // A deleted parent keeps its forks' copies: the branch is traced from the last session that still exists.
    if (parent?.kind === "gone") break
    child = { session: current, seq: info.origin.seq }
    current = info.origin.session
    seen.add(current)
  }
  return { kind: "root", root: current, child }
}

export interface BranchSet {
  /** The branch point: alternatives differ from position `seq + 1` of `root` on. */
  readonly root: string
  readonly seq: number
  /** The sessions of the alternatives, the root first, then its forks at `seq` by creation. */
  readonly sessions: ReadonlyArray<string>
  /** Which of them the shown session follows (0-based). */
  readonly current: number
}

/**
 * The alternatives of the user message at position `seq + 1` of the shown session, given its root (`branchRoot`)
 * and the root's forks. A fork at `seq` counts when it has more user messages than the `before` ones the prefix
 * holds (a fork nobody wrote in yet is not a branch of this message). The shown session's own line is always one.
 */
export const branchSet = (
  at: Extract<RootResult, { kind: "root" }>,
  seq: number,
  before: number,
  forks: ReadonlyArray<SessionSummary>
): BranchSet => {
  const mine = at.child !== null && at.child.seq === seq ? at.child.session : at.root
  const alternatives = forks
    .filter((f) => f.forkedFrom?.session === at.root && f.forkedFrom.seq === seq && (f.messages > before || f.session === mine))
    .sort((a, b) => a.createdAt - b.createdAt || (a.session < b.session ? -1 : a.session > b.session ? 1 : 0))
    .map((f) => f.session)
  const sessions = [at.root, ...alternatives.filter((s) => s !== at.root)]
  if (!sessions.includes(mine)) sessions.push(mine)
  return { root: at.root, seq, sessions, current: sessions.indexOf(mine) }
}
