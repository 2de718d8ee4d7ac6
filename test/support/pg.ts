/**
 * PostgreSQL test support: a fresh schema per use (`t_<random>`), reached through `search_path` in the URL,
 * dropped afterwards, so parallel runs never share tables. Only used when DATABASE_URL is set.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { describe } from "bun:test"
import { Effect, Layer, Redacted } from "effect"

/** DATABASE_URL when set and non-empty. */
export const databaseUrl: string | undefined = process.env.DATABASE_URL?.trim() || undefined

/** A describe block that runs only with DATABASE_URL; without it, it is skipped with a title that says why. */
export const pgSuite = (name: string, body: () => void) =>
  databaseUrl
    ? describe(name, body)
    : describe.skip(`${name} — SKIPPED because DATABASE_URL is not set (set it to a PostgreSQL database to run these)`, body)

/** `url` with `search_path` set to `schema` for every connection of a pool. */
export const urlWithSchema = (url: string, schema: string): string => {
  const parsed = new URL(url)
  parsed.searchParams.set("options", `-c search_path=${schema}`)
  return parsed.toString()
}

/** Runs raw SQL against `url` (its own short-lived pool). */
export const runSql = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>): Promise<A> =>
  Effect.runPromise(
    effect.pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }).pipe(Layer.orDie)),
      Effect.orDie
    )
  )

/** A schema made for one test: its URL (search_path set) and how to drop it. */
export interface TestSchema {
  readonly schema: string
  readonly url: string
  readonly drop: () => Promise<void>
}

/** Creates a fresh, empty schema `t_<random>` on the server at `url`. */
export const freshSchema = async (url: string): Promise<TestSchema> => {
  const schema = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`
  await runSql(url, Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE SCHEMA ${schema}`)))
  return {
    schema,
    url: urlWithSchema(url, schema),
    drop: () =>
      runSql(url, Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))).then(
        () => undefined
      )
  }
}
