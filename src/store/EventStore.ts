/**
 * The EventStore service: the durable, append-only tapes (one per session) and their summary rows.
 * Owns the contract and its errors; row encoding is in codec.ts. Knows nothing of reducers, writers or the Bus.
 */
import { Context, Data, type Effect, type Option } from "effect"
import type { Envelope } from "../domain/Event.ts"
import type { SessionSummary } from "../domain/projections/summaryTypes.ts"

/** The stored head of `session` was not the `expected` head of an append; nothing was appended. */
export class AppendConflict extends Data.TaggedError("AppendConflict")<{
  /** Session id. */
  readonly session: string
  /** The head the writer believed. */
  readonly expected: number
  /** The head found in the store (best effort when a concurrent append won). */
  readonly actual: number
  /** The underlying driver error, when a unique violation revealed the conflict. */
  readonly cause?: unknown
}> {}

/** Any other failure of the store: I/O, a corrupt row, a malformed batch. */
export class StoreError extends Data.TaggedError("StoreError")<{
  /** What went wrong, naming session and seq when one row is at fault. */
  readonly message: string
  /** Session concerned, if any. */
  readonly session?: string
  /** Seq concerned, if any. */
  readonly seq?: number
  /** The underlying error. */
  readonly cause?: unknown
}> {}

/** Where a page of the sessions list starts: strictly after this summary in the list's order. */
export interface SessionCursor {
  /** `updatedAt` of the last summary of the previous page. */
  readonly updatedAt: number
  /** Its session id (ties of `updatedAt` are ordered by session id, ascending). */
  readonly session: string
}

/** A page of the sessions list. */
export interface ListSessionsOptions {
  /** At most this many summaries; all when absent. */
  readonly limit?: number
  /** Only summaries after this one in the list's order. */
  readonly before?: SessionCursor
  /** Only sessions whose title contains this text (case-insensitive for ASCII letters; `%` and `_` are literal). */
  readonly title?: string
  /** Only sessions whose title or one of whose user messages contains this text (same matching as `title`). */
  readonly text?: string
  /** Only the forks of this session (its branches). */
  readonly forkedFrom?: string
}

/** The interface every EventStore layer implements (memory, SQLite, PostgreSQL). */
export interface EventStoreShape {
  /**
   * Appends `events` (seq `expectedHead + 1`, `+ 2`, … in order) to `session` and upserts its summary,
   * all in one transaction. Fails with `AppendConflict` if the stored head is not `expectedHead`
   * (also when a concurrent append won the race); nothing is appended then.
   */
  readonly append: (
    session: string,
    expectedHead: number,
    events: ReadonlyArray<Envelope>,
    summary: SessionSummary
  ) => Effect.Effect<void, AppendConflict | StoreError>
  /** Events of `session` with seq > `afterSeq`, in seq order, at most `limit` of them. A corrupt row fails. */
  readonly read: (session: string, afterSeq: number, limit?: number) => Effect.Effect<ReadonlyArray<Envelope>, StoreError>
  /** Last seq of `session`; 0 when it has no events. */
  readonly head: (session: string) => Effect.Effect<number, StoreError>
  /** The stored summary of `session`, if any. */
  readonly summary: (session: string) => Effect.Effect<Option.Option<SessionSummary>, StoreError>
  /**
   * Summaries of the sessions whose phase is one of `phases` (what recovery and the reaper look for), in no set order.
   * Answered from an index, not by reading every summary.
   */
  readonly openSessions: (phases: ReadonlyArray<SessionSummary["phase"]>) => Effect.Effect<ReadonlyArray<SessionSummary>, StoreError>
  /**
   * Summaries, most recently updated first (ties by session id), one page of them: answered from the
   * `(updated_at, session)` index, reading only the page.
   */
  readonly listSessions: (options?: ListSessionsOptions) => Effect.Effect<ReadonlyArray<SessionSummary>, StoreError>
  /**
   * Removes a session's tape and summary for good (the user deleted it); false when there was none. Forks of it keep
   * their own copies. Nothing else is touched.
   */
  readonly remove: (session: string) => Effect.Effect<boolean, StoreError>
  /** Every session id that has a summary row. */
  readonly sessionIds: () => Effect.Effect<ReadonlyArray<string>, StoreError>
}

/** The EventStore service tag. Layers: `layerMemory` (memory.ts), `layerSqlite` (sqlite.ts), `layerPg` (pg.ts). */
export class EventStore extends Context.Tag("tape/EventStore")<EventStore, EventStoreShape>() {}
