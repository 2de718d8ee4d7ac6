/**
 * SQLite EventStore layer (the default) via @effect/sql-sqlite-bun: WAL, synchronous=NORMAL, busy timeout.
 * Creates the file's folder and migrates on start; a batch is one transaction with one insert statement.
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, type Scope } from "effect"
import { EventStore, type EventStoreShape, StoreError } from "./EventStore.ts"
import { type AppendNow, type Dialect, makeSqlStore, migrate } from "./sql.ts"
import { makeStoreSqlite, type StoreSqlite } from "./sqliteClient.ts"

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

/**
 * The append as one synchronous transaction of prepared statements (the same statements as the generic path of
 * sql.ts: head check, rows from one JSON array, summary upsert), run while @effect/sql holds no transaction.
 */
const appendNowOf = (store: StoreSqlite): AppendNow => {
  const db = store.db
  const headOf = db.query<{ head: number | null }, [string]>("SELECT MAX(seq) AS head FROM events WHERE session = ?")
  const insert = db.query(`INSERT INTO events (session, seq, at, "by", type, payload)
    SELECT ?1, value ->> 'seq', value ->> 'at', value ->> 'by', value ->> 'type', value ->> 'payload' FROM json_each(?2)`)
  const upsert = db.query(`INSERT INTO sessions (session, summary, head, updated_at, phase, title, forked_from)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    ON CONFLICT (session) DO UPDATE SET summary = excluded.summary, head = excluded.head, updated_at = excluded.updated_at,
      phase = excluded.phase, title = excluded.title, forked_from = excluded.forked_from`)
  const write = db.transaction((session: string, expectedHead: number, rows: string, s: Parameters<AppendNow>[3]): number | null => {
    const actual = Number(headOf.get(session)?.head ?? 0)
    if (actual !== expectedHead) return actual
    if (rows !== "[]") insert.run(session, rows)
    upsert.run(session, s.summary, s.head, s.updatedAt, s.phase, s.title, s.forkedFrom)
    return null
  })
  return (session, expectedHead, rows, summary) => store.exclusive(() => write(session, expectedHead, rows, summary))
}

/**
 * The store over a SQLite file (created with its folder if missing), migrated, and the SQL client on the same one
 * connection (layerSqlite; tests that hold a transaction beside an append).
 */
export const makeSqlite = (
  options: SqliteOptions
): Effect.Effect<{ readonly store: EventStoreShape; readonly sql: SqlClient.SqlClient }, StoreError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    if (options.filename !== ":memory:") {
      yield* Effect.try({
        try: () => mkdirSync(dirname(options.filename), { recursive: true }),
        catch: (cause) => new StoreError({ message: `cannot create the folder of ${options.filename}`, cause })
      })
    }
    // bun:sqlite throws when the file cannot be opened; that is a configuration error, not a bug.
    const opened = yield* makeStoreSqlite(options.filename).pipe(
      Effect.catchAllDefect((cause) => new StoreError({ message: `cannot open ${options.filename}`, cause }))
    )
    const sql = opened.client
    const store = yield* Effect.gen(function*() {
      yield* sql.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`)
      yield* sql.unsafe("PRAGMA synchronous = NORMAL")
      yield* migrate(sqliteDialect)
      return yield* makeSqlStore(sqliteDialect, appendNowOf(opened))
    }).pipe(
      Effect.catchTag("SqlError", (cause) => new StoreError({ message: `cannot configure ${options.filename}`, cause })),
      Effect.provideService(SqlClient.SqlClient, sql)
    )
    return { store, sql }
  })

/** EventStore in a SQLite file (created with its folder if missing), migrated on start. */
export const layerSqlite = (options: SqliteOptions): Layer.Layer<EventStore, StoreError> =>
  Layer.scoped(EventStore, Effect.map(makeSqlite(options), ({ store }) => store)).pipe(Layer.provide(Reactivity.layer))
