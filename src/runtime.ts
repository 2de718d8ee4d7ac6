/**
 * The layers a process of Agent Tape is made of (server and worker), composed from one AppConfig. Runners are built
 * before anything that appends (recovery, the server), so no TurnStarted or approval is appended unheard.
 * Only main.ts and worker.ts (and the tests' entry points) launch them.
 */
import * as BunHttpServer from "@effect/platform-bun/BunHttpServer"
import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import { ConfigError, Duration, Effect, Layer, Logger, Option, Redacted, Schedule } from "effect"
import { layerClient, runFeed, runReaper, runWorker } from "./cluster/Cluster.ts"
import * as Leases from "./cluster/Leases.ts"
import { AppConfig, type AppConfigShape, appConfig, checkStore, clusterUrl } from "./config/AppConfig.ts"
import { LlmClient } from "./llm/LlmClient.ts"
import { contextBudget } from "./llm/provider.ts"
import { LlmRunner } from "./llm/LlmRunner.ts"
import { layerServerConfig, ModelInfoTag } from "./server/Config.ts"
import { serve } from "./server/Server.ts"
import * as Bus from "./session/Bus.ts"
import { SessionWriter } from "./session/SessionWriter.ts"
import * as Writer from "./session/SessionWriter.ts"
import { EventStore } from "./store/EventStore.ts"
import { layerFromConfig } from "./store/layer.ts"
import { type LoadedConfig, modelChoicesOf, UserConfig } from "./config/file.ts"
import { McpClients } from "./mcp/McpClients.ts"
import { ToolCatalogue } from "./tools/catalogue.ts"
import { ToolRunner } from "./tools/ToolRunner.ts"

/** What an embedding program or a test entry point may change (never read from the environment). */
export interface ProcessOptions {
  /** The commit feed ignores notifications (only its once-a-second check delivers other processes' events). */
  readonly dropNotifications?: boolean
  /** The config to run with, instead of the config file the environment names (an embedding program's own). */
  readonly user?: LoadedConfig
  /** Told the server's URL and port once it listens. */
  readonly onListening?: (url: string, port: number) => void
}

/**
 * The MCP servers of the config (a server that does not start stops start-up, naming it; later it is restarted with
 * back-off when it exits).
 */
const Mcp = Layer.unwrapEffect(
  Effect.map(UserConfig, (user) => {
    const clients = McpClients.layer(user.mcpServers)
    return Layer.provideMerge(Layer.effectDiscard(Effect.flatMap(McpClients, (c) => c.awaitStartup)), clients)
  })
)

/** Store, bus, model, tools (config file, MCP), writer and model info. */
export const core = (user?: LoadedConfig) => {
  const Store = layerFromConfig
  const BusLive = Bus.layer.pipe(Layer.provide(Store))
  const WriterCtx = Layer.effect(
    Writer.WriterContext,
    Effect.map(Effect.all([LlmClient, ToolCatalogue, AppConfig]), ([llm, tools, app]) => ({
      model: llm.model,
      models: llm.models.map((m) => m.name),
      checkTool: tools.check,
      limits: { maxTurnsPerMessage: app.loop.maxTurnsPerMessage },
      contextTokens: contextBudget(llm.models, Option.getOrUndefined(app.loop.contextTokens))
    }))
  )
  const Info = Layer.effect(
    ModelInfoTag,
    Effect.map(LlmClient, (llm) => ({ model: llm.model, provider: llm.kind, offline: llm.kind === "offline", models: llm.models }))
  )
  const WriterLive = Writer.layer.pipe(Layer.provide(WriterCtx))
  const Tools = ToolCatalogue.layer.pipe(Layer.provideMerge(Mcp))
  const Llm = Layer.unwrapEffect(
    Effect.gen(function* () {
      const user = yield* UserConfig
      const models = yield* modelChoicesOf(user.models)
      return LlmClient.layerFrom({ ...(models === undefined ? {} : { models }), ...(user.instructions === null ? {} : { instructions: user.instructions }) })
    })
  )
  return Layer.provideMerge(WriterLive, Layer.mergeAll(Store, BusLive, Llm, Tools)).pipe((l) => Layer.provideMerge(Info, l), Layer.provideMerge(user === undefined ? UserConfig.layer : Layer.succeed(UserConfig, user)))
}

/** Leases and the cluster's own PostgreSQL pool when the store is shared; nothing to coordinate alone. */
const coordination = (url: Redacted.Redacted, leaseMs: number) =>
  Layer.provideMerge(Leases.layerPg(Leases.newOwner(), leaseMs), layerClient(Redacted.value(url)))

/** Closes what was running when this (only) process stopped (rule 6), then runs the approved calls that never ran. */
const recover = Effect.gen(function* () {
  const store = yield* EventStore
  const writer = yield* SessionWriter
  const tools = yield* ToolRunner
  const open = yield* store.openSessions(["streaming", "executing"])
  for (const s of open) {
    yield* writer
      .submit(s.session, { type: "close_open", reason: "restart", approved: "keep", settle: true }, "system")
      .pipe(Effect.catchTag("Rejection", () => Effect.void))
    yield* tools.resumeApproved(s.session)
  }
  if (open.length > 0) yield* Effect.logInfo(`recovery: closed open turns/executions of ${open.length} session(s)`)
})

/** Sessions nobody wrote for ten minutes leave memory; the next input reloads them from the store. */
const Evictor = Layer.scopedDiscard(
  Effect.flatMap(SessionWriter, (writer) =>
    writer.evictIdle(10 * 60_000).pipe(Effect.repeat(Schedule.spaced(Duration.minutes(1))), Effect.forkScoped)
  )
)

/**
 * Finalizers run in reverse order: the server stops accepting and closes sockets first, then this records what this
 * process was running as interrupted (reason "shutdown"), then the runners' scopes close.
 */
const Shutdown = Layer.scopedDiscard(
  Effect.gen(function* () {
    const llm = yield* LlmRunner
    const tools = yield* ToolRunner
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* llm.stopAll("shutdown")
        yield* tools.stopAll("shutdown")
        yield* Effect.logInfo("shut down")
      })
    )
  })
)

/** Both runners: the tool runner only when tools run in this process. */
const runners = (app: AppConfigShape) =>
  Layer.merge(LlmRunner.layer, app.store.toolWorkers ? ToolRunner.layerNone : ToolRunner.layer)

/** The HTTP and websocket server, and the lines a user (and the tests) look for. */
const Server = (app: AppConfigShape, options: ProcessOptions) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const { url, port } = yield* serve
      options.onListening?.(url, port)
      const info = yield* ModelInfoTag
      yield* Effect.sync(() => {
        process.stdout.write(`Agent Tape listening on ${url}\n`)
        if (info.offline) process.stdout.write(`Model: the built-in offline model (set ANTHROPIC_API_KEY, OPENAI_API_KEY, AWS credentials or LLM_BASE_URL for a real one)\n`)
        else process.stdout.write(`Model: ${info.model} (${info.provider})\n`)
        if (app.store.kind === "postgres") {
          process.stdout.write(`Store: PostgreSQL, shared with other processes${app.store.toolWorkers ? "; tools run on workers (npm run worker)" : ""}\n`)
        }
      })
    })
  ).pipe(Layer.provide(layerServerConfig), Layer.provide(BunHttpServer.layerContext))

/** The server process as one layer: core, runners, then recovery (alone) or the feed and reaper (cluster), then the server. */
export const serverLayer = (app: AppConfigShape, options: ProcessOptions = {}) => {
  const base = Layer.provideMerge(core(options.user), Layer.succeed(AppConfig, app))
  return Option.match(clusterUrl(app), {
    onNone: () => {
      const withRunners = Layer.provideMerge(runners(app), Layer.provideMerge(Leases.layerNone, base))
      return Layer.provide(Server(app, options), Layer.provideMerge(Layer.mergeAll(Layer.effectDiscard(recover), Evictor, Shutdown), withRunners))
    },
    onSome: (url) => {
      const withRunners = Layer.provideMerge(runners(app), Layer.provideMerge(coordination(url, app.store.leaseMs), base))
      const cluster = Layer.scopedDiscard(Effect.zipRight(runFeed(options), runReaper))
      return Layer.provide(Server(app, options), Layer.provideMerge(Layer.mergeAll(cluster, Evictor, Shutdown), withRunners))
    }
  })
}

/** A tool worker as one layer: core, the model runner (it runs the turns its own results start), feed, reaper, the claim loop. */
export const workerLayer = (app: AppConfigShape, url: Redacted.Redacted, options: ProcessOptions = {}) => {
  const base = Layer.provideMerge(core(options.user), Layer.succeed(AppConfig, app))
  const withRunners = Layer.provideMerge(Layer.merge(LlmRunner.layer, ToolRunner.layerNone), Layer.provideMerge(coordination(url, app.store.leaseMs), base))
  const work = Layer.scopedDiscard(
    Effect.gen(function* () {
      yield* runFeed(options)
      yield* runReaper
      yield* runWorker(app.store.workerConcurrency)
      yield* Effect.sync(() => process.stdout.write(`Agent Tape worker ready (${app.store.workerConcurrency} at a time)\n`))
    })
  )
  return Layer.provide(Layer.merge(work, Shutdown), withRunners)
}

/** What stopped start-up, in one line (a bad variable names it; a bad config file names the file and key). */
export const startupMessage = (error: unknown): string =>
  ConfigError.isConfigError(error)
    ? String(error)
    : typeof error === "object" && error !== null && "message" in error
      ? String(error.message)
      : String(error)

/** Start-up failed (a bad variable, an unreachable store, a bad script): one clear line, exit code 1. */
const startupFailed = (error: unknown) =>
  Effect.sync(() => {
    process.stderr.write(`Agent Tape could not start: ${startupMessage(error)}\n`)
    process.exit(1)
  })

/** Reads the configuration once and launches `build(config)` until interrupted (SIGINT/SIGTERM shut down gracefully). */
export const launch = <E>(build: (app: AppConfigShape) => Effect.Effect<Layer.Layer<never, E>, unknown>) => {
  process.env.BAML_LOG ??= "warn"
  const program = Effect.gen(function* () {
    const app = yield* appConfig
    yield* checkStore(app)
    const layer = yield* build(app)
    return yield* Layer.launch(layer).pipe(Logger.withMinimumLogLevel(app.logLevel))
  })
  program.pipe(Effect.catchAll(startupFailed), BunRuntime.runMain)
}

/** The server process (main.ts), with the options of a test entry point. */
export const runServer = (options: ProcessOptions = {}) => launch((app) => Effect.succeed(serverLayer(app, options)))
