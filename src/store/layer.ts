/**
 * Picks the EventStore layer from the process configuration (DESIGN.md §8): TAPE_STORE, TAPE_DATA, DATABASE_URL.
 * Only selection lives here; main.ts decides when to build it.
 */
import { join } from "node:path"
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../config/AppConfig.ts"
import { type EventStore, StoreError } from "./EventStore.ts"
import { layerMemory } from "./memory.ts"
import { layerPg } from "./pg.ts"
import { layerSqlite } from "./sqlite.ts"

/** The SQLite file inside the data folder. */
export const sqliteFileName = "tape.sqlite"

/**
 * The store the configuration names: `sqlite` (default; `<TAPE_DATA or ./data>/tape.sqlite`), `memory`, or `postgres`
 * (with `DATABASE_URL`; approved calls queued for workers when TAPE_TOOL_WORKERS=external).
 */
export const layerFromConfig: Layer.Layer<EventStore, StoreError, AppConfig> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const { store } = yield* AppConfig
    switch (store.kind) {
      case "memory":
        return layerMemory
      case "sqlite":
        return layerSqlite({ filename: join(store.dataDir, sqliteFileName) })
      case "postgres": {
        if (Option.isNone(store.databaseUrl)) {
          return yield* new StoreError({ message: "TAPE_STORE=postgres needs DATABASE_URL (e.g. postgres://user@host:5432/db)" })
        }
        return layerPg({ url: store.databaseUrl.value, toolQueue: store.toolWorkers })
      }
      default: {
        const _exhaustive: never = store.kind
        return _exhaustive
      }
    }
  })
)
