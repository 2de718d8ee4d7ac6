/**
 * Running several processes on one PostgreSQL store: the commit feed (LISTEN + a periodic check that heals missed
 * notifications), the reaper (closes turns and calls whose process died), and the tool-worker claim loop.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Clock, Duration, Effect, Redacted, Schedule, Stream } from "effect"
import type { Input } from "../domain/Command.ts"
import { Bus, compactionOfLease, summaryLeaseKey, untilClosed } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore } from "../store/EventStore.ts"
import { COMMIT_CHANNEL } from "../store/pg.ts"
import { transaction } from "../store/sql.ts"
import { CALLS_PER_SESSION, closesCall, executeCall, storedCall } from "../tools/ToolRunner.ts"
import { DB_NOW_MS, Leases, type LeasesShape } from "./Leases.ts"

/** A pool for the cluster's own queries and the LISTEN connection. */
export const layerClient = (url: string) =>
  PgClient.layer({ url: Redacted.make(url), maxConnections: 4, applicationName: "agent-tape-cluster" })

/**
 * Keeps this process's session subscribers fresh with what other processes commit: each notification hands the
 * newest event to the Bus, which reads any gap from the store; every second each watched session is checked anyway,
 * so a lost notification delays delivery, never loses it.
 */
export const runFeed = (options: { readonly dropNotifications?: boolean } = {}) =>
  Effect.gen(function* () {
    const pg = yield* PgClient.PgClient
    const bus = yield* Bus
    const store = yield* EventStore
    const refresh = (session: string, head?: number) =>
      Effect.gen(function* () {
        const h = head ?? (yield* store.head(session))
        if (h > 0) yield* bus.publishRemote(yield* store.read(session, h - 1, 1))
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`feed could not read ${session}: ${e.message}`)))

    yield* pg.listen(COMMIT_CHANNEL).pipe(
      Stream.runForEach((payload) => {
        if (options.dropNotifications) return Effect.void
        const i = payload.lastIndexOf(":")
        const session = payload.slice(0, i)
        const head = Number(payload.slice(i + 1))
        return bus.watchedSessions().includes(session) ? refresh(session, head) : Effect.void
      }),
      Effect.catchAll((e) => Effect.logWarning(`commit feed: ${e.message}; listening again`)),
      Effect.repeat(Schedule.spaced(Duration.seconds(1))),
      Effect.forkScoped
    )
    yield* Effect.suspend(() => Effect.forEach(bus.watchedSessions(), (s) => refresh(s), { discard: true })).pipe(
      Effect.repeat(Schedule.spaced(Duration.seconds(1))),
      Effect.forkScoped
    )
  })

/**
 * Every second: turns and calls whose lease expired are closed as the rules say (TurnInterrupted / Cancelled with
 * outcome unknown, reason "restart"); a call that never started goes back to the queue. A turn left streaming with no
 * lease at all (its process died before taking one) is closed once the session has been silent for a while, and job
 * rows no lease covers are dropped.
 */
export const runReaper = Effect.gen(function* () {
  const leases = yield* Leases
  const writer = yield* SessionWriter
  const store = yield* EventStore
  const sql = yield* SqlClient.SqlClient
  /** A stale report (the turn already ended) counts as handled; a store failure does not. */
  const closeTurn = (session: string, key: string) => {
    // A compaction's lease: no summary will come from its process, so the writer trims and starts the turn (rule 11).
    const upToSeq = compactionOfLease(key)
    const input: Input = upToSeq === undefined
      ? { type: "abandon_turn", turnId: key, reason: "restart" }
      : { type: "model_summary_failed", upToSeq, error: "the process summarising it stopped" }
    return writer.submit(session, input, "system").pipe(Effect.catchTag("Rejection", () => Effect.void))
  }
  /** A running call is cancelled (outcome unknown); one that never started goes back to the queue; a finished one is done. */
  const closeCall = (session: string, callId: string) =>
    Effect.gen(function* () {
      const status = yield* writer.inspect(session, (s) => s.commands.calls.get(callId)?.status)
      if (status === "running") {
        yield* writer.submit(session, { type: "abandon_call", callId, reason: "restart" }, "system")
        yield* sql`DELETE FROM tool_jobs WHERE session = ${session} AND call_id = ${callId}`
      } else if (status === "approved") {
        yield* sql`UPDATE tool_jobs SET status = 'queued', owner = NULL, expires_at = NULL WHERE session = ${session} AND call_id = ${callId}`
      } else {
        yield* sql`DELETE FROM tool_jobs WHERE session = ${session} AND call_id = ${callId}`
      }
    }).pipe(Effect.catchTag("Rejection", () => Effect.void))

  const sweep = Effect.gen(function* () {
    for (const lease of yield* leases.takeExpired()) {
      // Released only once handled: if anything here fails, the lease expires again and someone retries.
      const handled = lease.kind === "turn" ? closeTurn(lease.session, lease.key) : closeCall(lease.session, lease.key)
      yield* handled.pipe(
        Effect.zipRight(leases.release(lease.kind, lease.session, lease.key)),
        Effect.catchAll((e) => Effect.logWarning(`reaper: ${lease.kind} ${lease.key} of ${lease.session} not closed yet: ${e.message}`))
      )
    }
    yield* dropOrphanJobs(sql, leases.leaseMs)
    const silentSince = (yield* Clock.currentTimeMillis) - 3 * leases.leaseMs
    for (const s of yield* store.openSessions(["streaming"])) {
      if (s.updatedAt > silentSince || (yield* leases.held("turn", s.session))) continue
      const [turnId, compacting] = yield* writer.inspect(s.session, (st) => [st.interrupts.streaming, st.interrupts.compacting?.upToSeq] as const)
      if (turnId) yield* Effect.ignore(writer.submit(s.session, { type: "abandon_turn", turnId, reason: "restart" }, "system"))
      else if (compacting !== undefined) yield* Effect.ignore(closeTurn(s.session, summaryLeaseKey(compacting)))
    }
  }).pipe(Effect.catchAll((e) => Effect.logWarning(`reaper: ${e.message}`)))
  yield* sweep.pipe(Effect.repeat(Schedule.spaced(Duration.seconds(1))), Effect.forkScoped)
})

/**
 * Deletes the job rows of calls that are claimed or started but that no lease covers any more: left behind when a
 * worker released its lease and then could not delete its row (the store failed in between). Such a row would count
 * against its session's CALLS_PER_SESSION forever, so two of them would leave that session's calls unclaimed. A row
 * claimed in the last lease period is left alone (its claim may still be committing).
 */
export const dropOrphanJobs = (sql: SqlClient.SqlClient, leaseMs: number) =>
  sql`DELETE FROM tool_jobs r WHERE r.status <> 'queued' AND r.expires_at < ${sql.literal(DB_NOW_MS)} - ${leaseMs}
    AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.kind = 'call' AND l.session = r.session AND l.key = r.call_id)`

/**
 * Claims the oldest queued call of a session that has fewer than CALLS_PER_SESSION calls claimed or running (one
 * session cannot take every worker), and takes its lease in the same transaction: a worker that dies right after
 * claiming leaves a lease that expires, and the reaper puts the call back in the queue. Timed by the database clock,
 * so the same statement is right every time it runs.
 */
export const claimNext = (sql: SqlClient.SqlClient, leases: LeasesShape) => {
  const now = sql.literal(DB_NOW_MS)
  return transaction(
    sql,
    Effect.gen(function* () {
      const rows = yield* sql<{ session: string; call_id: string; approved_seq: number }>`
        UPDATE tool_jobs SET status = 'claimed', owner = ${leases.owner}, expires_at = ${now} + ${leases.leaseMs}
        WHERE (session, call_id) IN (
          SELECT session, call_id FROM tool_jobs q WHERE status = 'queued'
            AND (SELECT COUNT(*) FROM tool_jobs r WHERE r.session = q.session AND r.status <> 'queued') < ${CALLS_PER_SESSION}
          ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
        ) RETURNING session, call_id, approved_seq`
      const job = rows[0]
      if (job) {
        yield* sql`INSERT INTO leases (kind, session, key, owner, expires_at) VALUES ('call', ${job.session}, ${job.call_id}, ${leases.owner}, ${now} + ${leases.leaseMs})
          ON CONFLICT (kind, session, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`
      }
      return job
    })
  )
}

/**
 * A tool worker: claims approved calls from `tool_jobs` (FOR UPDATE SKIP LOCKED) and runs each with `executeCall`
 * (lease, ToolExecutionStarted, sandbox, result). A cancellation on the tape stops the run.
 */
export const runWorker = (concurrency: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const leases = yield* Leases
    const bus = yield* Bus
    const slots = yield* Effect.makeSemaphore(concurrency)

    const claim = claimNext(sql, leases)

    /** The call runs until it finishes or its cancellation reaches the tape, whichever comes first. */
    const execute = (session: string, callId: string, approvedSeq: number) =>
      Effect.flatMap(storedCall(session, callId), (call) =>
        call === null
          ? Effect.logDebug(`worker: call ${callId} of ${session} is no longer approved and waiting`)
          : executeCall(call, sql`UPDATE tool_jobs SET status = 'started' WHERE session = ${session} AND call_id = ${callId}`)
      ).pipe(
        untilClosed(bus, session, approvedSeq, closesCall(callId)),
        Effect.catchAll((e) => Effect.logDebug(`worker: call ${callId} of ${session}: ${e.message}`)),
        Effect.ensuring(Effect.ignore(sql`DELETE FROM tool_jobs WHERE session = ${session} AND call_id = ${callId} AND owner = ${leases.owner}`))
      )

    const loop = Effect.gen(function* () {
      yield* slots.take(1)
      const job = yield* claim.pipe(Effect.orElseSucceed(() => undefined))
      if (!job) {
        yield* slots.release(1)
        yield* Effect.sleep(Duration.millis(200))
        return
      }
      yield* execute(job.session, job.call_id, job.approved_seq).pipe(Effect.ensuring(slots.release(1)), Effect.forkScoped)
    })
    yield* loop.pipe(Effect.forever, Effect.forkScoped)
  })
