/**
 * The `agent-tape` package: what a config file imports (`defineConfig`, `tool`) and what an embedding program runs
 * (`createServer`, or `serverLayer` for Effect users). The testing helpers are `agent-tape/testing`.
 */
import { Cause, ConfigProvider, Deferred, Effect, Either, Exit, Fiber, Layer, Logger } from "effect"
import { appConfig, type AppConfigShape, checkStore } from "./config/AppConfig.ts"
import { type AgentConfig, checkConfig } from "./config/file.ts"
import { serverLayer as layerOf, startupMessage } from "./runtime.ts"

/** Effect's Schema, for your tools' `args` (a config file need not install effect itself). */
export { Schema } from "effect"
export { type AgentConfig, type BuiltinSettings, defineConfig, type ModelDefinition, type Policy, tool, type ToolContext, type ToolDefinition, type UserTool } from "./config/file.ts"

/** How to run an embedded server. */
export interface CreateServerOptions {
  /** Your config, as a config file would export it; absent: the config file the environment names, if any. */
  readonly config?: AgentConfig
  /** Settings as the environment variables of docs/DESIGN.md §8 (PORT, TAPE_STORE, LLM_SCRIPT…), over process.env. */
  readonly env?: Readonly<Record<string, string>>
}

/** A running embedded server. */
export interface RunningServer {
  /** The URL to open (with the token when there is one). */
  readonly url: string
  readonly port: number
  /** Shuts it down gracefully (what runs is recorded as interrupted, reason "shutdown"). */
  readonly stop: () => Promise<void>
}

/** The configuration `options` describe: the environment with `env` over it. */
const providerOf = (options: CreateServerOptions) =>
  ConfigProvider.fromMap(new Map(Object.entries({ ...process.env, ...options.env }).flatMap(([k, v]) => (v === undefined ? [] : [[k, v] as const]))))

/**
 * The whole server as one Layer, for Effect programs (launch it with `Layer.launch`, or merge it into yours); `app`
 * is read with the program's ConfigProvider unless given. A bad config fails the layer with the message start-up gives.
 */
export const serverLayer = (config?: AgentConfig, onListening?: (url: string, port: number) => void) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const app: AppConfigShape = yield* appConfig
      yield* checkStore(app)
      const user = config === undefined ? undefined : yield* Either.match(checkConfig("createServer config", config), { onLeft: Effect.fail, onRight: Effect.succeed })
      return layerOf(app, { ...(user === undefined ? {} : { user }), ...(onListening === undefined ? {} : { onListening }) })
    })
  )

/** Starts Agent Tape inside your program; resolves once it listens (rejects with the start-up error). */
export const createServer = async (options: CreateServerOptions = {}): Promise<RunningServer> => {
  process.env.BAML_LOG ??= "warn"
  const listening = Effect.runSync(Deferred.make<{ readonly url: string; readonly port: number }, unknown>())
  const program = Effect.gen(function* () {
    const app = yield* appConfig
    const notify = (url: string, port: number) => Effect.runSync(Deferred.succeed(listening, { url, port }))
    return yield* Layer.launch(serverLayer(options.config, notify)).pipe(Logger.withMinimumLogLevel(app.logLevel))
  }).pipe(
    Effect.withConfigProvider(providerOf(options)),
    Effect.tapErrorCause((cause) => Deferred.failCause(listening, cause))
  )
  const fiber = Effect.runFork(program)
  const started = await Effect.runPromiseExit(Deferred.await(listening))
  if (Exit.isFailure(started)) {
    await Effect.runPromise(Fiber.interrupt(fiber))
    throw new Error(`Agent Tape could not start: ${startupMessage(Cause.squash(started.cause))}`)
  }
  return {
    url: started.value.url,
    port: started.value.port,
    stop: () => Effect.runPromise(Fiber.interrupt(fiber)).then(() => undefined)
  }
}
