/**
 * The server process: store, bus, writer, model, tools, runners, server. Alone (SQLite, memory) it closes what a
 * previous run left open before accepting connections (DESIGN.md rule 6); on PostgreSQL, leases and the reaper do
 * that across processes. SIGINT/SIGTERM shut down gracefully.
 */
import * as BunHttpServer from "@effect/platform-bun/BunHttpServer"
import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import { Duration, Effect, Layer, Logger, LogLevel, Schedule } from "effect"
import { runFeed, runReaper } from "./cluster/Cluster.ts"
import * as Leases from "./cluster/Leases.ts"
import * as LlmRunner from "./llm/LlmRunner.ts"
import { clusterUrl, coordination, core, externalWorkers } from "./runtime.ts"
import { fromEnv, ModelInfoTag, ServerConfigTag } from "./server/Config.ts"
import { serve } from "./server/Server.ts"
import { SessionWriter } from "./session/SessionWriter.ts"
import { EventStore } from "./store/EventStore.ts"
import * as ToolRunner from "./tools/ToolRunner.ts"

process.env.BAML_LOG ??= "warn"

/** Closes what was running when this (only) process stopped: an interrupted turn, a cancelled execution (rule 6). */
const recover = Effect.gen(function* () {
  const store = yield* EventStore
  const writer = yield* SessionWriter
  const open = yield* store.openSessions(["streaming", "executing"])
  for (const s of open) {
    yield* writer
      .submit(s.session, { type: "close_open", reason: "restart", cancelApproved: false, settle: true }, "system")
      .pipe(Effect.catchTag("Rejection", () => Effect.void))
  }
  return open
})

const url = clusterUrl(process.env)
const workers = externalWorkers(process.env)

const program = Effect.gen(function* () {
  const recovered = url === null ? yield* recover : []
  if (recovered.length > 0) yield* Effect.logInfo(`recovery: closed open turns/executions of ${recovered.length} session(s)`)

  // Sessions nobody wrote for ten minutes leave memory; the next input reloads them from the store.
  const writer = yield* SessionWriter
  yield* writer.evictIdle(10 * 60_000).pipe(Effect.repeat(Schedule.spaced(Duration.minutes(1))), Effect.forkScoped)

  const llmRunner = yield* LlmRunner.make
  const toolRunner = workers ? null : yield* ToolRunner.make
  if (toolRunner) for (const s of recovered) yield* toolRunner.resumeApproved(s.session).pipe(Effect.ignore)

  // Finalizers run in reverse order: the server stops accepting and closes sockets first, then this records what
  // this process was running as interrupted (reason "shutdown").
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* llmRunner.stopAll("shutdown")
      if (toolRunner) yield* toolRunner.stopAll("shutdown")
      yield* Effect.logInfo("shut down")
    })
  )
  const { url: listening } = yield* serve
  const info = yield* ModelInfoTag
  yield* Effect.sync(() => {
    // The one line a user and the tests look for.
    process.stdout.write(`Agent Tape listening on ${listening}\n`)
    if (info.offline) process.stdout.write(`Model: the built-in offline model (set ANTHROPIC_API_KEY, OPENAI_API_KEY, AWS credentials or LLM_BASE_URL for a real one)\n`)
    else process.stdout.write(`Model: ${info.model} (${info.provider})\n`)
    if (url !== null) process.stdout.write(`Store: PostgreSQL, shared with other processes${workers ? "; tools run on workers (npm run worker)" : ""}\n`)
  })
  return yield* Effect.never
})

const clustered = Effect.gen(function* () {
  yield* runFeed({ dropNotifications: process.env.TAPE_TEST_DROP_NOTIFY === "1" })
  yield* runReaper
  return yield* program
})

const config = fromEnv(process.env, () => crypto.randomUUID().replaceAll("-", ""))
const services = core().pipe(Layer.provideMerge(Layer.succeed(ServerConfigTag, config)))
const level = process.env.TAPE_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Info

const run = url === null
  ? program.pipe(Effect.scoped, Effect.provide(Layer.merge(services, Leases.layerNone)))
  : clustered.pipe(Effect.scoped, Effect.provide(Layer.merge(services, coordination(url))))

run.pipe(Effect.provide(BunHttpServer.layerContext), Logger.withMinimumLogLevel(level), BunRuntime.runMain)
