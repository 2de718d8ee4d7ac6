/**
 * The only place that launches layers: store, bus, writer, model, tools, runners, server.
 * Recovery (DESIGN.md rule 6) runs before the server accepts connections; SIGINT/SIGTERM shut down gracefully.
 */
import { BunHttpServer, BunRuntime } from "@effect/platform-bun"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { LlmClient } from "./llm/LlmClient.ts"
import * as LlmRunner from "./llm/LlmRunner.ts"
import { fromEnv, ModelInfoTag, ServerConfigTag } from "./server/Config.ts"
import { serve } from "./server/Server.ts"
import * as Bus from "./session/Bus.ts"
import * as SessionWriter from "./session/SessionWriter.ts"
import { EventStore } from "./store/EventStore.ts"
import { layerFromConfig } from "./store/layer.ts"
import { ToolCatalogue } from "./tools/catalogue.ts"
import * as ToolRunner from "./tools/ToolRunner.ts"

process.env.BAML_LOG ??= "warn"

const OPEN_PHASES = new Set(["streaming", "executing"])

/** Closes what was running when the process stopped: an interrupted turn, a cancelled execution (rule 6). */
const closeOpen = (reason: "restart" | "shutdown") =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const writer = yield* SessionWriter.SessionWriter
    const open = (yield* store.listSessions()).filter((s) => OPEN_PHASES.has(s.phase))
    for (const s of open) {
      yield* writer
        .submit(s.session, { type: "close_open", reason, cancelApproved: false, settle: reason === "restart" }, "system")
        .pipe(Effect.catchTag("Rejection", () => Effect.void))
    }
    return open
  })

const program = Effect.gen(function* () {
  const recovered = yield* closeOpen("restart")
  if (recovered.length > 0) yield* Effect.logInfo(`recovery: closed open turns/executions of ${recovered.length} session(s)`)

  const llmRunner = yield* LlmRunner.make
  const toolRunner = yield* ToolRunner.make
  for (const s of recovered) yield* toolRunner.resumeApproved(s.session).pipe(Effect.ignore)

  // Runs first on shutdown (finalizers run in reverse): stop the runners, then record what they left open.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      yield* llmRunner.stopAll
      yield* toolRunner.stopAll
      const closed = yield* closeOpen("shutdown").pipe(Effect.orElseSucceed(() => []))
      yield* Effect.logInfo(`shut down; closed ${closed.length} open session(s)`)
    })
  )
  const { url } = yield* serve
  const info = yield* ModelInfoTag
  yield* Effect.sync(() => {
    // The one line a user and the tests look for.
    process.stdout.write(`Agent Tape listening on ${url}\n`)
    if (info.offline) process.stdout.write(`Model: the built-in offline model (set ANTHROPIC_API_KEY, OPENAI_API_KEY, AWS credentials or LLM_BASE_URL for a real one)\n`)
    else process.stdout.write(`Model: ${info.model} (${info.provider})\n`)
  })
  return yield* Effect.never
})

const config = fromEnv(process.env, () => crypto.randomUUID().replaceAll("-", ""))

const Store = layerFromConfig
const BusLive = Bus.layer.pipe(Layer.provide(Store))
const Model = LlmClient.layer
const Tools = ToolCatalogue.layer
const WriterCtx = Layer.effect(
  SessionWriter.WriterContext,
  Effect.map(Effect.all([LlmClient, ToolCatalogue]), ([llm, tools]) => ({ model: llm.model, checkTool: tools.check }))
)
const Info = Layer.effect(
  ModelInfoTag,
  Effect.map(LlmClient, (llm) => ({ model: llm.model, provider: llm.kind, offline: llm.kind === "offline" }))
)
const Writer = SessionWriter.layer.pipe(Layer.provide(WriterCtx))
const Services = Layer.provideMerge(Writer, Layer.mergeAll(Store, BusLive, Model, Tools)).pipe(
  Layer.provideMerge(Layer.succeed(ServerConfigTag, config)),
  (l) => Layer.provideMerge(Info, l)
)
const level = process.env.TAPE_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Info

program.pipe(
  Effect.scoped,
  Effect.provide(Services),
  Effect.provide(BunHttpServer.layerContext),
  Logger.withMinimumLogLevel(level),
  BunRuntime.runMain
)
