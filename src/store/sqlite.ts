/**
 * SQLite EventStore layer (the default) via @effect/sql-sqlite-bun: WAL, synchronous=NORMAL, busy timeout.
 * Creates the file's folder and migrates on start; a batch is one transaction with one insert statement.
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-bun/SqliteClient"
import { Effect, Layer } from "effect"
import { EventStore, StoreError } from "./EventStore.ts"
import { type Dialect, makeSqlStore, migrate } from "./sql.ts"

/** Configuration of `layerSqlite`. */
export interface SqliteOptions {
  /** Path of the database file (its folder is created), or `:memory:`. */
  readonly filename: string
  /** How long a writer waits for another process's lock, in ms (default 5000). */
  readonly busyTimeoutMs?: number
}

const sqliteDialect: Dialect = {
  name: "sqlite",
  migrations: [
    {
      version: 1,
      name: "events and sessions",
      statements: [
        `CREATE TABLE events (
          session TEXT NOT NULL,
          seq INTEGER NOT NULL,
          at INTEGER NOT NULL,
          "by" TEXT NOT NULL,
          type TEXT NOT NULL,
          payload TEXT NOT NULL,
          PRIMARY KEY (session, seq)
        )`,
        `CREATE TABLE sessions (
          session TEXT PRIMARY KEY NOT NULL,
          summary TEXT NOT NULL,
          head INTEGER NOT NULL,
          updated_at INTEGER NOT NULL
        )`,
        `CREATE INDEX sessions_updated_at ON sessions (updated_at DESC)`
      ]
    },
    {
      version: 2,
      name: "sessions.phase, indexed for recovery",
      statements: [
        `ALTER TABLE sessions ADD COLUMN phase TEXT NOT NULL DEFAULT 'idle'`,
        `UPDATE sessions SET phase = COALESCE(json_extract(summary, '$.phase'), 'idle')`,
        `CREATE INDEX sessions_phase ON sessions (phase)`
      ]
    },
    {
      version: 3,
      name: "sessions.title for search; the list's order indexed, for pages",
      statements: [
        `ALTER TABLE sessions ADD COLUMN title TEXT NOT NULL DEFAULT ''`,
        `UPDATE sessions SET title = COALESCE(json_extract(summary, '$.title'), '')`,
        `DROP INDEX sessions_updated_at`,
        `CREATE INDEX sessions_recent ON sessions (updated_at DESC, session ASC)`
      ]
    },
    {
      version: 4,
      name: "sessions.forked_from, for a session's branches",
      statements: [
        `ALTER TABLE sessions ADD COLUMN forked_from TEXT`,
        `UPDATE sessions SET forked_from = json_extract(summary, '$.forkedFrom.session')`,
        `CREATE INDEX sessions_forked_from ON sessions (forked_from)`
      ]
    }
  ],
  // One connection behind a semaphore: migrations of this process are already serial; other processes wait on the file lock.
  migrationLock: () => Effect.void,
  insertEvents: (sql, session, rows) =>
    sql`INSERT INTO events (session, seq, at, "by", type, payload)
      SELECT ${session}, value ->> 'seq', value ->> 'at', value ->> 'by', value ->> 'type', value ->> 'payload'
      FROM json_each(${rows})`,
  isUniqueViolation: (error) => {
    const cause = error.cause
    const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
    return code.startsWith("SQLITE_CONSTRAINT_PRIMARYKEY") || code.startsWith("SQLITE_CONSTRAINT_UNIQUE")
  }
}

/** EventStore in a SQLite file (created with its folder if missing), migrated on start. */
export const layerSqlite = (options: SqliteOptions): Layer.Layer<EventStore, StoreError> =>
  Layer.scoped(
    EventStore,
    Effect.gen(function*() {
      if (options.filename !== ":memory:") {
        yield* Effect.try({
          try: () => mkdirSync(dirname(options.filename), { recursive: true }),
          catch: (cause) => new StoreError({ message: `cannot create the folder of ${options.filename}`, cause })
        })
      }
      // bun:sqlite throws when the file cannot be opened; that is a configuration error, not a bug.
      const client = yield* SqliteClient.make({ filename: options.filename }).pipe(
        Effect.catchAllDefect((cause) => new StoreError({ message: `cannot open ${options.filename}`, cause }))
      )
      return yield* Effect.gen(function*() {
        yield* client.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`)
        yield* client.unsafe("PRAGMA synchronous = NORMAL")
        yield* migrate(sqliteDialect)
        return yield* makeSqlStore(sqliteDialect)
      }).pipe(
        Effect.catchTag("SqlError", (cause) => new StoreError({ message: `cannot configure ${options.filename}`, cause })),
        Effect.provideService(SqlClient.SqlClient, client)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))
