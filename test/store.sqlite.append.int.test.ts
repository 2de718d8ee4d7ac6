// The SQLite append's one synchronous transaction (src/store/sqlite.ts `appendNowOf`) shares its connection with
// @effect/sql: it must wait while an @effect/sql transaction holds the connection, or its rows would become part of
// that transaction and vanish with its rollback after the append was answered.
import { describe, expect, test } from "bun:test"
import * as Reactivity from "@effect/experimental/Reactivity"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { message, summaryOf } from "./support/rows.ts"
import { transaction } from "../src/store/sql.ts"
import { makeSqlite } from "../src/store/sqlite.ts"

describe("SQLite append beside an @effect/sql transaction", () => {
  test("an append made while another transaction is open is not rolled back with it", async () => {
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const { store, sql } = yield* makeSqlite({ filename: ":memory:" })
        const opened = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // A transaction that writes, waits (yielding the event loop), then fails: everything it did rolls back.
        const other = yield* transaction(
          sql,
          Effect.gen(function* () {
            yield* sql`INSERT INTO sessions (session, summary, head, updated_at) VALUES ('other', '{}', 0, 0)`
            yield* Deferred.succeed(opened, undefined)
            yield* Deferred.await(release)
            return yield* Effect.fail("roll back")
          })
        ).pipe(Effect.exit, Effect.fork)
        yield* Deferred.await(opened)
        const append = yield* Effect.fork(store.append("s1", 0, [message("s1", 1)], summaryOf("s1", 1)))
        // Let the append run if it could (it must not, while the transaction holds the connection).
        yield* Effect.yieldNow()
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
        yield* Deferred.succeed(release, undefined)
        const otherExit = yield* Fiber.join(other)
        yield* Fiber.join(append)
        const events = yield* store.read("s1", 0)
        const others = yield* sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM sessions WHERE session = 'other'`
        return { rolledBack: Exit.isFailure(otherExit), events: events.length, others: Number(others[0]?.n) }
      }).pipe(Effect.scoped, Effect.provide(Reactivity.layer))
    )
    expect(result).toEqual({ rolledBack: true, events: 1, others: 0 })
  })
})
