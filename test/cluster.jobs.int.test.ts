/**
 * The tool-job queue on PostgreSQL: a claimed or started row that no lease covers any more (its worker released the
 * lease, then failed to delete the row: the store went away in between) must not hold its session's places in the
 * queue forever. Found while analysing the chaos test's store outages on workers. Skipped without DATABASE_URL.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Layer, Redacted } from "effect"
import { claimNext, dropOrphanJobs } from "../src/cluster/Cluster.ts"
import { DB_NOW_MS, Leases, layerPg as leasesPg } from "../src/cluster/Leases.ts"
import { layerPg as storePg } from "../src/store/pg.ts"
import { databaseUrl, freshSchema, pgSuite, type TestSchema } from "./support/pg.ts"

const LEASE_MS = 1_000

pgSuite("the tool-job queue on PostgreSQL", () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await freshSchema(databaseUrl!)
  })
  afterAll(async () => {
    await schema?.drop()
  })

  test("job rows no lease covers are dropped, and no longer keep their session's next call from being claimed", async () => {
    const out = await Effect.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const leases = yield* Leases
        const now = sql.literal(DB_NOW_MS)
        const old = sql.literal(`${DB_NOW_MS} - ${10 * LEASE_MS}`)
        // Session s1: two rows whose workers are gone without a lease (orphans), and a call waiting in the queue.
        // Session s2: a long call that is running now (old claim, live lease): it must stay.
        yield* sql`INSERT INTO tool_jobs (session, call_id, approved_seq, status, owner, expires_at, created_at) VALUES
          ('s1', 'call-1', 1, 'started', 'gone', ${old}, 1),
          ('s1', 'call-2', 2, 'claimed', 'gone', ${old}, 2),
          ('s1', 'call-3', 3, 'queued', NULL, NULL, 3),
          ('s2', 'call-4', 4, 'started', 'alive', ${old}, 4)`
        yield* sql`INSERT INTO leases (kind, session, key, owner, expires_at) VALUES ('call', 's2', 'call-4', 'alive', ${now} + ${LEASE_MS})`
        const before = yield* claimNext(sql, leases)
        yield* dropOrphanJobs(sql, LEASE_MS)
        const after = yield* claimNext(sql, leases)
        const rows = yield* sql<{ call_id: string; status: string }>`SELECT call_id, status FROM tool_jobs ORDER BY call_id`
        return { before: before?.call_id ?? null, after: after?.call_id ?? null, rows }
      }).pipe(
        Effect.provide(
          Layer.mergeAll(leasesPg("a-worker", LEASE_MS), Layer.discard(storePg({ url: schema.url }))).pipe(
            Layer.provideMerge(PgClient.layer({ url: Redacted.make(schema.url), maxConnections: 2 }))
          )
        ),
        Effect.orDie
      )
    )
    expect(out.before).toBeNull()
    expect(out.after).toBe("call-3")
    expect(out.rows).toEqual([
      { call_id: "call-3", status: "claimed" },
      { call_id: "call-4", status: "started" }
    ])
  })
})
