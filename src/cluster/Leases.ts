/**
 * Leases: "this process is running that turn / call", renewed while it runs. Only PostgreSQL needs them (several
 * processes share one store); alone, a process's own restart recovery closes what it left open, so `layerNone`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Duration, Effect, Layer, type Scope, Schedule } from "effect"

export type LeaseKind = "turn" | "call"

export interface LeasesShape {
  /** This process's id, recorded as the owner of what it holds. */
  readonly owner: string
  /** How long a lease lives without renewal (renewed three times per period). */
  readonly leaseMs: number
  /** Holds a lease for the life of the scope: taken now, renewed in the background, released when the scope closes. */
  readonly hold: (kind: LeaseKind, session: string, key: string) => Effect.Effect<void, never, Scope.Scope>
  /**
   * Takes over every lease whose holder stopped renewing it (re-leased to this process, so only one process handles
   * each). Call `release` once it is handled; a lease not released expires again and is taken by whoever comes next.
   */
  readonly takeExpired: () => Effect.Effect<ReadonlyArray<{ readonly kind: LeaseKind; readonly session: string; readonly key: string }>>
  /** Drops a lease this process holds. */
  readonly release: (kind: LeaseKind, session: string, key: string) => Effect.Effect<void>
  /** Whether anyone holds a live lease of this kind on the session. */
  readonly held: (kind: LeaseKind, session: string) => Effect.Effect<boolean>
}

export class Leases extends Context.Tag("tape/Leases")<Leases, LeasesShape>() {}

/** How long a lease lives without renewal by default (TAPE_LEASE_MS); renewed three times per period. */
export const LEASE_MS = 5_000

export const newOwner = () => `${process.pid}-${crypto.randomUUID().slice(0, 8)}`

/** One process alone: nothing to coordinate. */
export const layerNone = Layer.succeed(Leases, {
  owner: "local",
  leaseMs: LEASE_MS,
  hold: () => Effect.void,
  takeExpired: () => Effect.succeed([]),
  release: () => Effect.void,
  held: () => Effect.succeed(false)
})

/** The database's own clock in epoch ms, read when a statement runs (never a time frozen into a built statement). */
export const DB_NOW_MS = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)"

/** Leases in the shared PostgreSQL database (table `leases`, created by the store's migrations), timed by its clock. */
export const layerPg = (owner: string, leaseMs: number = LEASE_MS) =>
  Layer.effect(
    Leases,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const now = sql.literal(DB_NOW_MS)
      const put = (kind: LeaseKind, session: string, key: string) =>
        sql`INSERT INTO leases (kind, session, key, owner, expires_at) VALUES (${kind}, ${session}, ${key}, ${owner}, ${now} + ${leaseMs})
          ON CONFLICT (kind, session, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at`
      const hold = (kind: LeaseKind, session: string, key: string) =>
        Effect.gen(function* () {
          yield* Effect.ignoreLogged(put(kind, session, key))
          yield* Effect.ignoreLogged(put(kind, session, key)).pipe(
            Effect.repeat(Schedule.spaced(Duration.millis(Math.floor(leaseMs / 3)))),
            Effect.forkScoped
          )
          yield* Effect.addFinalizer(() =>
            Effect.ignoreLogged(sql`DELETE FROM leases WHERE kind = ${kind} AND session = ${session} AND key = ${key} AND owner = ${owner}`)
          )
        })
      const takeExpired = () =>
        sql<{ kind: LeaseKind; session: string; key: string }>`UPDATE leases SET owner = ${owner}, expires_at = ${now} + ${leaseMs}
          WHERE expires_at < ${now} RETURNING kind, session, key`.pipe(Effect.orElseSucceed(() => []))
      const release = (kind: LeaseKind, session: string, key: string) =>
        Effect.ignoreLogged(sql`DELETE FROM leases WHERE kind = ${kind} AND session = ${session} AND key = ${key} AND owner = ${owner}`)
      const held = (kind: LeaseKind, session: string) =>
        sql<{ n: number }>`SELECT COUNT(*)::int AS n FROM leases WHERE kind = ${kind} AND session = ${session} AND expires_at >= ${now}`.pipe(
          Effect.map((rows) => (rows[0]?.n ?? 0) > 0),
          Effect.orElseSucceed(() => true)
        )
      return { owner, leaseMs, hold, takeExpired, release, held }
    })
  )
