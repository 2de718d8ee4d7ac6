/**
 * The EventStore over an @effect/sql client, shared by the SQLite and PostgreSQL layers, and their migrations.
 * A dialect supplies only what differs (batch insert, unique-violation test, DDL, migration lock).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Either, Option } from "effect"
import type { Envelope } from "../domain/Event.ts"
import type { SessionSummary } from "../domain/projections/summaryTypes.ts"
import { checkBatch, fromRow, summaryFromJson, summaryToJson, toRow } from "./codec.ts"
import { AppendConflict, type EventStoreShape, type ListSessionsOptions, StoreError } from "./EventStore.ts"

/** One schema change, applied once, in version order, in one transaction with the others pending. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

/** What differs between SQL engines. */
export interface Dialect {
  readonly name: string
  readonly migrations: ReadonlyArray<Migration>
  /** Taken first inside the migration transaction, so concurrent starts migrate one at a time. */
  readonly migrationLock: (sql: SqlClient.SqlClient) => Effect.Effect<void, SqlError>
  /** One statement inserting every row; `rows` is the batch as a JSON array of {seq, at, by, type, payload}. */
  readonly insertEvents: (sql: SqlClient.SqlClient, session: string, rows: string) => Statement.Statement<object>
  /** Whether a driver error is a primary-key / unique violation. */
  readonly isUniqueViolation: (error: SqlError) => boolean
  /**
   * Runs inside the append's transaction, after the rows: what must commit with the events or not at all
   * (PostgreSQL: the commit announcement and the tool-job outbox).
   */
  readonly afterAppend?: (
    sql: SqlClient.SqlClient,
    session: string,
    events: ReadonlyArray<Envelope>,
    head: number
  ) => Effect.Effect<void, SqlError>
}

const storeError = (message: string, extra: { readonly session?: string } = {}) => (cause: SqlError) =>
  new StoreError({ message: `${message}: ${cause.message}`, ...extra, cause })

/**
 * `sql.withTransaction`, except that a COMMIT or ROLLBACK that fails (the connection dropped) fails with its SqlError
 * instead of the defect @effect/sql makes of it. Whether such a transaction committed is unknown: callers treat it as a
 * store failure and read again, which they cannot do for a defect. Every transaction of the store and the cluster.
 */
export const transaction = <A, E, R>(sql: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
  sql.withTransaction(effect).pipe(Effect.catchAllDefect((defect) => (defect instanceof SqlError ? Effect.fail(defect) : Effect.die(defect))))

/** A LIKE pattern matching `text` anywhere, lower-cased; its backslashes, `%` and `_` are escaped (ESCAPE is a backslash). */
const containsPattern = (text: string): string => `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`

/** Runs the pending migrations of `dialect` (tracked in table `tape_migrations`). */
export const migrate = (dialect: Dialect) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* transaction(
      sql,
      Effect.gen(function*() {
        yield* dialect.migrationLock(sql)
        yield* sql`CREATE TABLE IF NOT EXISTS tape_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)`
        const done = yield* sql<{ readonly version: number }>`SELECT version FROM tape_migrations`
        const applied = new Set(done.map((row) => Number(row.version)))
        for (const migration of dialect.migrations) {
          if (applied.has(migration.version)) continue
          for (const statement of migration.statements) yield* sql.unsafe(statement)
          yield* sql`INSERT INTO tape_migrations (version, name) VALUES (${migration.version}, ${migration.name})`
          yield* Effect.logDebug(`${dialect.name}: applied migration ${migration.version} ${migration.name}`)
        }
      })
    )
  }).pipe(
    Effect.mapError(storeError(`${dialect.name}: migration failed`)),
    Effect.withSpan("EventStore.migrate")
  )

/** The summary columns of the `sessions` row an append writes. */
export interface SummaryRow {
  readonly summary: string
  readonly head: number
  readonly updatedAt: number
  readonly phase: string
  readonly title: string
  readonly forkedFrom: string | null
}

/**
 * An engine's whole append in one call (head check, rows, summary row, one transaction), for engines that can do it
 * without a statement per effect (SQLite: synchronous prepared statements). Answers null when it wrote, or the head
 * it found instead of `expectedHead` (nothing written).
 */
export type AppendNow = (session: string, expectedHead: number, rows: string, summary: SummaryRow) => Effect.Effect<number | null, SqlError>

/** Builds the EventStore over the SqlClient in context; run `migrate` first. `appendNow` replaces the append's statements. */
export const makeSqlStore = (dialect: Dialect, appendNow?: AppendNow): Effect.Effect<EventStoreShape, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const headOf = (session: string) =>
      Effect.map(
        sql<{ readonly head: number | null }>`SELECT MAX(seq) AS head FROM events WHERE session = ${session}`,
        (rows) => Number(rows[0]?.head ?? 0)
      )

    const append = Effect.fnUntraced(function*(
      session: string,
      expectedHead: number,
      events: ReadonlyArray<Envelope>,
      summary: SessionSummary
    ) {
      const checked = yield* checkBatch(session, expectedHead, events, summary)
      const rows = JSON.stringify(
        checked.map((envelope) => {
          const row = toRow(envelope)
          return { seq: row.seq, at: row.at, by: row.by, type: row.type, payload: row.payload }
        })
      )
      const summaryJson = summaryToJson(summary)
      const write = Effect.gen(function*() {
        const actual = yield* headOf(session)
        if (actual !== expectedHead) {
          return yield* Effect.fail(new AppendConflict({ session, expected: expectedHead, actual }))
        }
        if (checked.length > 0) yield* dialect.insertEvents(sql, session, rows)
        yield* sql`INSERT INTO sessions (session, summary, head, updated_at, phase, title, forked_from)
          VALUES (${session}, ${summaryJson}, ${summary.head}, ${summary.updatedAt}, ${summary.phase}, ${summary.title}, ${summary.forkedFrom?.session ?? null})
          ON CONFLICT (session) DO UPDATE SET summary = excluded.summary, head = excluded.head, updated_at = excluded.updated_at,
            phase = excluded.phase, title = excluded.title, forked_from = excluded.forked_from`
        if (dialect.afterAppend && checked.length > 0) yield* dialect.afterAppend(sql, session, checked, expectedHead + checked.length)
      })
      const written = appendNow === undefined
        ? transaction(sql, write)
        : Effect.flatMap(
          appendNow(session, expectedHead, rows, {
            summary: summaryJson,
            head: summary.head,
            updatedAt: summary.updatedAt,
            phase: summary.phase,
            title: summary.title,
            forkedFrom: summary.forkedFrom?.session ?? null
          }),
          (actual) => (actual === null ? Effect.void : Effect.fail(new AppendConflict({ session, expected: expectedHead, actual })))
        )
      yield* written.pipe(
        Effect.catchTag("SqlError", (cause): Effect.Effect<never, AppendConflict | StoreError> =>
          dialect.isUniqueViolation(cause)
            // A concurrent append at the same head won the race on the (session, seq) key.
            ? Effect.flatMap(
              Effect.orElseSucceed(headOf(session), () => -1),
              (actual) => Effect.fail(new AppendConflict({ session, expected: expectedHead, actual, cause }))
            )
            : Effect.fail(storeError(`append to ${session} failed`, { session })(cause))
        )
      )
    })

    const read = Effect.fnUntraced(function*(session: string, afterSeq: number, limit?: number) {
      const rows = yield* sql`SELECT session, seq, at, "by", type, payload FROM events
        WHERE session = ${session} AND seq > ${afterSeq} ORDER BY seq ${
        limit === undefined ? sql`` : sql`LIMIT ${Math.max(0, Math.floor(limit))}`
      }`.values.pipe(Effect.mapError(storeError(`read of ${session} failed`, { session })))
      const out: Array<Envelope> = new Array(rows.length)
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i]!
        const decoded = fromRow(row[0], Number(row[1]), Number(row[2]), row[3], row[4], row[5])
        if (Either.isLeft(decoded)) return yield* decoded.left
        out[i] = decoded.right
      }
      return out as ReadonlyArray<Envelope>
    })

    const head = Effect.fn("EventStore.head")((session: string) =>
      headOf(session).pipe(Effect.mapError(storeError(`head of ${session} failed`, { session })))
    )

    const summaryOf = Effect.fn("EventStore.summary")(function*(session: string) {
      const rows = yield* sql<{ readonly summary: string }>`SELECT summary FROM sessions WHERE session = ${session}`.pipe(
        Effect.mapError(storeError(`summary of ${session} failed`, { session }))
      )
      const row = rows[0]
      if (row === undefined) return Option.none<SessionSummary>()
      return Option.some(yield* summaryFromJson(session, row.summary))
    })

    const listSessions = Effect.fn("EventStore.listSessions")(function*(options: ListSessionsOptions = {}) {
      const { before, limit, title, text, forkedFrom } = options
      const after = before === undefined
        ? sql``
        : sql`AND (updated_at < ${before.updatedAt} OR (updated_at = ${before.updatedAt} AND session > ${before.session}))`
      const search = title === undefined ? sql`` : sql`AND LOWER(title) LIKE ${containsPattern(title)} ESCAPE '\\'`
      // A user message's text sits JSON-encoded in its payload; plain words match there as they are.
      const said = text === undefined
        ? sql``
        : sql`AND (LOWER(title) LIKE ${containsPattern(text)} ESCAPE '\\' OR EXISTS (SELECT 1 FROM events e WHERE e.session = sessions.session
            AND e.type IN ('UserMessageAdded', 'UserMessageQueued') AND LOWER(e.payload) LIKE ${containsPattern(text)} ESCAPE '\\'))`
      const page = limit === undefined ? sql`` : sql`LIMIT ${Math.max(0, Math.floor(limit))}`
      const rows = yield* sql<{ readonly session: string; readonly summary: string }>`SELECT session, summary
        FROM sessions WHERE 1 = 1 ${after} ${search} ${said} ${forkedFrom === undefined ? sql`` : sql`AND forked_from = ${forkedFrom}`} ORDER BY updated_at DESC, session ASC ${page}`.pipe(
        Effect.mapError(storeError("listing sessions failed"))
      )
      const out: Array<SessionSummary> = []
      for (const row of rows) out.push(yield* summaryFromJson(row.session, row.summary))
      return out as ReadonlyArray<SessionSummary>
    })

    const openSessions = Effect.fn("EventStore.openSessions")(function*(phases: ReadonlyArray<SessionSummary["phase"]>) {
      if (phases.length === 0) return [] as ReadonlyArray<SessionSummary>
      const rows = yield* sql<{ readonly session: string; readonly summary: string }>`SELECT session, summary
        FROM sessions WHERE ${sql.in("phase", phases)}`.pipe(Effect.mapError(storeError("listing open sessions failed")))
      const out: Array<SessionSummary> = []
      for (const row of rows) out.push(yield* summaryFromJson(row.session, row.summary))
      return out as ReadonlyArray<SessionSummary>
    })

    const sessionIds = Effect.fn("EventStore.sessionIds")(function*() {
      const rows = yield* sql<{ readonly session: string }>`SELECT session FROM sessions ORDER BY session`.pipe(
        Effect.mapError(storeError("listing session ids failed"))
      )
      return rows.map((row) => row.session) as ReadonlyArray<string>
    })

    const remove = Effect.fn("EventStore.remove")(function*(session: string) {
      const gone = yield* sql.withTransaction(
        Effect.gen(function*() {
          yield* sql`DELETE FROM events WHERE session = ${session}`
          return yield* sql<{ readonly session: string }>`DELETE FROM sessions WHERE session = ${session} RETURNING session`
        })
      ).pipe(Effect.mapError(storeError(`delete of ${session} failed`, { session })))
      return gone.length > 0
    })

    return { append, read, head, summary: summaryOf, openSessions, listSessions, remove, sessionIds } satisfies EventStoreShape
  })
