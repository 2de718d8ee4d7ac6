/**
 * A tool worker process (`npm run worker`): claims approved tool calls from the shared PostgreSQL queue and runs them
 * in the sandbox; it also runs the model turns it starts itself (the loop back after its tool results).
 */
import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import { Effect, Logger, LogLevel } from "effect"
import { runFeed, runReaper, runWorker } from "./cluster/Cluster.ts"
import * as LlmRunner from "./llm/LlmRunner.ts"
import { clusterUrl, coordination, core } from "./runtime.ts"

process.env.BAML_LOG ??= "warn"

const url = clusterUrl(process.env)
if (url === null) {
  process.stderr.write("npm run worker needs TAPE_STORE=postgres and DATABASE_URL (the queue lives in PostgreSQL)\n")
  process.exit(2)
}
const concurrency = Number(process.env.TAPE_WORKER_CONCURRENCY ?? "") || 4

const program = Effect.gen(function* () {
  yield* runFeed({ dropNotifications: process.env.TAPE_TEST_DROP_NOTIFY === "1" })
  yield* runReaper
  const llmRunner = yield* LlmRunner.make
  yield* runWorker(concurrency)
  yield* Effect.addFinalizer(() => llmRunner.stopAll("shutdown"))
  yield* Effect.sync(() => process.stdout.write(`Agent Tape worker ready (${concurrency} at a time)\n`))
  return yield* Effect.never
})

program.pipe(
  Effect.scoped,
  Effect.provide(core()),
  Effect.provide(coordination(url)),
  Logger.withMinimumLogLevel(process.env.TAPE_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Info),
  BunRuntime.runMain
)
