/**
 * The SQLite connection of the store: an @effect/sql client over one `bun:sqlite` Database (as
 * @effect/sql-sqlite-bun's `make` builds it: one connection behind a semaphore, WAL), that also hands out the
 * Database and that semaphore, so the append's hot path can run as one synchronous transaction of prepared
 * statements while no @effect/sql statement or transaction holds the connection (issue 15: the five statements of an
 * append through @effect/sql cost ~0.5 ms of CPU; prepared, ~30 µs).
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { Database } from "bun:sqlite"
import { Context, Effect, Scope } from "effect"

export interface StoreSqlite {
  readonly client: Client.SqlClient
  readonly db: Database
  /**
   * Runs `f` on the Database while no @effect/sql statement or transaction holds the connection (the client's own
   * permit); `f` must be synchronous and leave no transaction open. What it throws fails with an SqlError.
   */
  readonly exclusive: <A>(f: (db: Database) => A) => Effect.Effect<A, SqlError>
}

/** Opens `filename` (created if missing, WAL); closed with the scope. Throws (a defect) when the file cannot be opened. */
export const makeStoreSqlite = (filename: string): Effect.Effect<StoreSqlite, never, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const compiler = Statement.makeCompilerSqlite()
    const db = new Database(filename, { readwrite: true, create: true })
    yield* Effect.addFinalizer(() => Effect.sync(() => db.close()))
    db.run("PRAGMA journal_mode = WAL;")
    const failed = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })
    const run = (sql: string, params: ReadonlyArray<unknown>, values: boolean) =>
      Effect.withFiberRuntime<ReadonlyArray<any>, SqlError>((fiber) => {
        const safe = Context.get(fiber.currentContext, Client.SafeIntegers)
        try {
          const statement = db.query(sql)
          // @ts-ignore bun-types lacks safeIntegers (as in @effect/sql-sqlite-bun)
          statement.safeIntegers(safe)
          const bound = params as Array<never>
          return Effect.succeed((values ? statement.values(...bound) : statement.all(...bound)) ?? [])
        } catch (cause) {
          return Effect.fail(failed(cause))
        }
      })
    const connection = {
      execute: (sql: string, params: ReadonlyArray<unknown>, transformRows?: (rows: ReadonlyArray<any>) => ReadonlyArray<any>) =>
        transformRows ? Effect.map(run(sql, params, false), transformRows) : run(sql, params, false),
      executeRaw: (sql: string, params: ReadonlyArray<unknown>) => run(sql, params, false),
      executeValues: (sql: string, params: ReadonlyArray<unknown>) => run(sql, params, true),
      executeUnprepared: (sql: string, params: ReadonlyArray<unknown>, transformRows?: (rows: ReadonlyArray<any>) => ReadonlyArray<any>) =>
        transformRows ? Effect.map(run(sql, params, false), transformRows) : run(sql, params, false),
      executeStream: () => Effect.dieMessage("executeStream not implemented")
    }
    const semaphore = yield* Effect.makeSemaphore(1)
    const acquirer = semaphore.withPermits(1)(Effect.succeed(connection))
    const transactionAcquirer = Effect.uninterruptibleMask((restore) =>
      Effect.as(
        Effect.zipRight(restore(semaphore.take(1)), Effect.tap(Effect.scope, (scope) => Scope.addFinalizer(scope, semaphore.release(1)))),
        connection
      )
    )
    const client = yield* Client.make({
      acquirer: acquirer as never,
      compiler,
      transactionAcquirer: transactionAcquirer as never,
      spanAttributes: [["db.system.name", "sqlite"]]
    })
    const exclusive = <A>(f: (db: Database) => A): Effect.Effect<A, SqlError> =>
      semaphore.withPermits(1)(
        Effect.suspend(() => {
          try {
            return Effect.succeed(f(db))
          } catch (cause) {
            return Effect.fail(failed(cause))
          }
        })
      )
    return { client, db, exclusive }
  })
