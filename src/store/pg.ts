/**
 * PostgreSQL EventStore layer via @effect/sql-pg, migrated on start under an advisory lock.
 * A unique violation on (session, seq) from a concurrent writer surfaces as AppendConflict, so writers can re-read and retry.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Layer, Redacted } from "effect"
import { EventStore, StoreError } from "./EventStore.ts"
import { type Dialect, makeSqlStore, migrate } from "./sql.ts"

/** Configuration of `layerPg`. */
export interface PgOptions {
  /** Connection URL, e.g. `postgres://user@host:5432/db` (`?options=-c search_path=...` selects a schema). */
  readonly url: string | Redacted.Redacted
  /** Pool size (default 10). */
  readonly maxConnections?: number
  /** Queue approved tool calls for worker processes (`tool_jobs`), in the same transaction as the approval. */
  readonly toolQueue?: boolean
}

/** The channel every commit is announced on, as `<session>:<head>`. */
export const COMMIT_CHANNEL = "tape_commits"

/** Arbitrary key of the advisory lock that serialises migrations across processes. */
const migrationLockKey = 7_261_150_001

const pgDialect: Dialect = {
  name: "postgres",
  migrations: [
    {
      version: 1,
      name: "events and sessions",
      statements: [
        `CREATE TABLE events (
          session TEXT NOT NULL,
          seq INTEGER NOT NULL,
          at DOUBLE PRECISION NOT NULL,
          "by" TEXT NOT NULL,
          type TEXT NOT NULL,
          payload TEXT NOT NULL,
          PRIMARY KEY (session, seq)
        )`,
        `CREATE TABLE sessions (
          session TEXT PRIMARY KEY,
          summary TEXT NOT NULL,
          head INTEGER NOT NULL,
          updated_at DOUBLE PRECISION NOT NULL
        )`,
        `CREATE INDEX sessions_updated_at ON sessions (updated_at DESC)`
      ]
    },
    {
      version: 2,
      name: "leases and tool jobs",
      statements: [
        `CREATE TABLE leases (
          kind TEXT NOT NULL,
          session TEXT NOT NULL,
          key TEXT NOT NULL,
          owner TEXT NOT NULL,
          expires_at DOUBLE PRECISION NOT NULL,
          PRIMARY KEY (kind, session, key)
        )`,
        `CREATE TABLE tool_jobs (
          session TEXT NOT NULL,
          call_id TEXT NOT NULL,
          approved_seq INTEGER NOT NULL,
          status TEXT NOT NULL,
          owner TEXT,
          expires_at DOUBLE PRECISION,
          created_at DOUBLE PRECISION NOT NULL,
          PRIMARY KEY (session, call_id)
        )`,
        `CREATE INDEX tool_jobs_status ON tool_jobs (status, created_at)`
      ]
    },
    {
      version: 3,
      name: "sessions.phase, indexed for recovery and the reaper",
      statements: [
        `ALTER TABLE sessions ADD COLUMN phase TEXT NOT NULL DEFAULT 'idle'`,
        `UPDATE sessions SET phase = COALESCE(summary::json->>'phase', 'idle')`,
        `CREATE INDEX sessions_phase ON sessions (phase)`
      ]
    },
    {
      version: 4,
      name: "sessions.title for search; the list's order indexed, for pages",
      statements: [
        `ALTER TABLE sessions ADD COLUMN title TEXT NOT NULL DEFAULT ''`,
        `UPDATE sessions SET title = COALESCE(summary::json->>'title', '')`,
        `DROP INDEX sessions_updated_at`,
        `CREATE INDEX sessions_recent ON sessions (updated_at DESC, session ASC)`
      ]
    },
    {
      version: 5,
      name: "sessions.forked_from, for a session's branches",
      statements: [
        `ALTER TABLE sessions ADD COLUMN forked_from TEXT`,
        `UPDATE sessions SET forked_from = summary::json->'forkedFrom'->>'session'`,
        `CREATE INDEX sessions_forked_from ON sessions (forked_from)`
      ]
    }
  ],
  migrationLock: (sql) => Effect.asVoid(sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`),
  insertEvents: (sql, session, rows) =>
    sql`INSERT INTO events (session, seq, at, "by", type, payload)
      SELECT ${session}, x.seq, x.at, x."by", x.type, x.payload
      FROM json_to_recordset(${rows}::json) AS x(seq INTEGER, at DOUBLE PRECISION, "by" TEXT, type TEXT, payload TEXT)`,
  isUniqueViolation: (error) => {
    const cause = error.cause
    return typeof cause === "object" && cause !== null && "code" in cause && cause.code === "23505"
  }
}

/** Announces the commit (delivered only if the transaction commits) and queues approved calls for workers. */
const afterAppend = (toolQueue: boolean): NonNullable<Dialect["afterAppend"]> => (sql, session, events, head) =>
  Effect.gen(function*() {
    // pg_notify() as a plain SELECT: the driver's notify() sends a bind parameter PostgreSQL refuses.
    yield* sql`SELECT pg_notify(${COMMIT_CHANNEL}, ${`${session}:${head}`})`
    if (!toolQueue) return
    for (const e of events) {
      if (e.type !== "ToolCallApproved") continue
      yield* sql`INSERT INTO tool_jobs (session, call_id, approved_seq, status, created_at)
        VALUES (${session}, ${e.callId}, ${e.seq}, 'queued', ${e.at}) ON CONFLICT DO NOTHING`
    }
  })

/** EventStore in PostgreSQL, migrated on start. */
export const layerPg = (options: PgOptions): Layer.Layer<EventStore, StoreError> =>
  Layer.scoped(
    EventStore,
    Effect.gen(function*() {
      const client = yield* PgClient.make({
        url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
        maxConnections: options.maxConnections ?? 10,
        applicationName: "agent-tape"
      }).pipe(
        Effect.catchTag("SqlError", (cause) => new StoreError({ message: `cannot connect to PostgreSQL: ${cause.message}`, cause }))
      )
      yield* migrate(pgDialect).pipe(Effect.provideService(SqlClient.SqlClient, client))
      return yield* makeSqlStore({ ...pgDialect, afterAppend: afterAppend(options.toolQueue ?? false) }).pipe(Effect.provideService(SqlClient.SqlClient, client))
    })
  ).pipe(Layer.provide(Reactivity.layer))
