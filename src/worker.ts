/**
 * A tool worker process (`npm run worker`): claims approved tool calls from the shared PostgreSQL queue and runs them
 * in the sandbox; it also runs the model turns it starts itself (the loop back after its tool results).
 */
import { ConfigError, Effect, Option } from "effect"
import { clusterUrl } from "./config/AppConfig.ts"
import { launch, workerLayer } from "./runtime.ts"

launch((app) =>
  Option.match(clusterUrl(app), {
    onNone: () => Effect.fail(ConfigError.MissingData(["TAPE_STORE"], "npm run worker needs TAPE_STORE=postgres and DATABASE_URL (the queue lives in PostgreSQL)")),
    onSome: (url) => Effect.succeed(workerLayer(app, url))
  })
)
