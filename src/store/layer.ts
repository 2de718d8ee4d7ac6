/**
 * Picks the EventStore layer from the environment (DESIGN.md §8): TAPE_STORE, TAPE_DATA, DATABASE_URL.
 * Only selection lives here; main.ts decides when to build it.
 */
import { join } from "node:path"
import { Config, Effect, Layer, Option, Redacted } from "effect"
import { type EventStore, StoreError } from "./EventStore.ts"
import { layerMemory } from "./memory.ts"
import { layerPg } from "./pg.ts"
import { layerSqlite } from "./sqlite.ts"

/** The SQLite file inside the data folder. */
export const sqliteFileName = "tape.sqlite"

/**
 * The store named by `TAPE_STORE`: `sqlite` (default; `<TAPE_DATA or ./data>/tape.sqlite`), `memory`,
 * or `postgres` (requires `DATABASE_URL`). A bad value or a missing URL fails with a StoreError that says so.
 */
export const layerFromConfig: Layer.Layer<EventStore, StoreError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const kind = (yield* Config.string("TAPE_STORE").pipe(Config.withDefault("sqlite"))).trim().toLowerCase()
    switch (kind) {
      case "memory":
        return layerMemory
      case "sqlite": {
        const folder = yield* Config.string("TAPE_DATA").pipe(Config.withDefault("./data"))
        return layerSqlite({ filename: join(folder, sqliteFileName) })
      }
      case "postgres":
      case "postgresql": {
        const url = yield* Config.option(Config.redacted("DATABASE_URL"))
        if (Option.isNone(url) || Redacted.value(url.value).trim() === "") {
          return yield* new StoreError({ message: "TAPE_STORE=postgres needs DATABASE_URL (e.g. postgres://user@host:5432/db)" })
        }
        const workers = (yield* Config.string("TAPE_TOOL_WORKERS").pipe(Config.withDefault(""))).trim()
        return layerPg({ url: url.value, toolQueue: workers === "external" })
      }
      default:
        return yield* new StoreError({ message: `TAPE_STORE must be sqlite, memory or postgres, not "${kind}"` })
    }
  }).pipe(
    Effect.mapError((error) =>
      error instanceof StoreError ? error : new StoreError({ message: `store configuration: ${String(error)}`, cause: error })
    )
  )
)
