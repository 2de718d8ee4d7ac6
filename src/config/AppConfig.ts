/**
 * The one configuration of a process (docs/DESIGN.md §8): every environment variable read once, with Effect `Config`,
 * into one typed service. A bad value stops start-up with a ConfigError that names the variable; empty means unset.
 */
import { Config, ConfigError, Context, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"
import { parsePolicies, type ToolName } from "../tools/policies.ts"
import type { ApprovalPolicy } from "../tools/Tool.ts"

export interface AppConfigShape {
  readonly server: {
    readonly host: string
    readonly port: number
    /** TAPE_TOKEN as given; a server not on loopback generates one when it is absent. */
    readonly token: Option.Option<Redacted.Redacted>
    readonly allowedOrigins: ReadonlyArray<string>
    /** Extra names the server answers to in `Host` (a reverse proxy's public name). */
    readonly allowedHosts: ReadonlyArray<string>
    /** Sessions one client (connection or address) may create per minute. */
    readonly sessionsPerMinute: number
    readonly webRoot: string
    readonly maxBufferedBytes: number
    readonly slowReaderMs: number
    readonly commandsPerSecond: number
  }
  readonly store: {
    readonly kind: "sqlite" | "memory" | "postgres"
    readonly dataDir: string
    readonly databaseUrl: Option.Option<Redacted.Redacted>
    /** Approved calls run on `npm run worker` processes (PostgreSQL only). */
    readonly toolWorkers: boolean
    readonly workerConcurrency: number
    /** How long a turn's or call's lease lives without renewal (PostgreSQL). */
    readonly leaseMs: number
  }
  readonly tools: {
    readonly workspace: string
    readonly httpAllow: ReadonlyArray<string>
    readonly policies: Partial<Record<ToolName, ApprovalPolicy>>
  }
  readonly loop: {
    readonly maxTurnsPerMessage: number
    /** TAPE_CONTEXT_TOKENS: the memory's token budget for every model choice (else each choice's own). */
    readonly contextTokens: Option.Option<number>
  }
  readonly files: {
    /** TAPE_CONFIG: the config file (else `./agent-tape.config.ts` when it exists). */
    readonly config: Option.Option<string>
    /** TAPE_MCP_CONFIG: a plain MCP client file whose servers join the catalogue. */
    readonly mcp: Option.Option<string>
  }
  readonly logLevel: LogLevel.LogLevel
}

export class AppConfig extends Context.Tag("tape/AppConfig")<AppConfig, AppConfigShape>() {}

/** A variable's trimmed text; unset and empty (or blank) are the same. */
const text = (name: string): Config.Config<Option.Option<string>> =>
  Config.string(name).pipe(
    Config.option,
    Config.map((o) => Option.filter(Option.map(o, (s) => s.trim()), (s) => s !== ""))
  )

const withText = <A>(name: string, fallback: A, parse: (s: string) => Either.Either<A, string>): Config.Config<A> =>
  text(name).pipe(
    Config.mapOrFail((o) =>
      Option.match(o, {
        onNone: () => Either.right(fallback),
        onSome: (s) => Either.mapLeft(parse(s), (why) => ConfigError.InvalidData([name], why))
      })
    )
  )

/** A whole number in [min, max]. */
const integer = (name: string, fallback: number, min: number, max: number): Config.Config<number> =>
  withText(name, fallback, (s) => {
    const n = Number(s)
    return /^-?\d+$/.test(s) && n >= min && n <= max ? Either.right(n) : Either.left(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(s)}`)
  })

const oneOf = <const L extends string>(name: string, fallback: L, values: ReadonlyArray<L>, aliases: Readonly<Record<string, L>> = {}): Config.Config<L> =>
  withText(name, fallback, (s) => {
    const v = s.toLowerCase()
    const hit = values.find((x) => x === v) ?? aliases[v]
    return hit !== undefined ? Either.right(hit) : Either.left(`expected one of ${values.join(", ")}, got ${JSON.stringify(s)}`)
  })

const list = (name: string): Config.Config<ReadonlyArray<string>> =>
  Config.map(text(name), (o) => Option.match(o, { onNone: () => [], onSome: (s) => s.split(",").map((x) => x.trim()).filter((x) => x !== "") }))

const secret = (name: string): Config.Config<Option.Option<Redacted.Redacted>> => Config.map(text(name), Option.map(Redacted.make))

const logLevels: Readonly<Record<string, LogLevel.LogLevel>> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error
}

/** The whole configuration from the environment (or any ConfigProvider). */
export const appConfig: Config.Config<AppConfigShape> = Config.all({
  server: Config.all({
    host: Config.map(text("HOST"), Option.getOrElse(() => "127.0.0.1")),
    port: integer("PORT", 3457, 0, 65535),
    token: secret("TAPE_TOKEN"),
    allowedOrigins: list("TAPE_ALLOWED_ORIGINS"),
    allowedHosts: list("TAPE_ALLOWED_HOSTS"),
    sessionsPerMinute: integer("TAPE_SESSIONS_PER_MINUTE", 600, 1, 1_000_000),
    webRoot: Config.map(text("TAPE_WEB_ROOT"), Option.getOrElse(() => "web/dist")),
    maxBufferedBytes: integer("TAPE_MAX_BUFFERED_BYTES", 8 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
    slowReaderMs: integer("TAPE_SLOW_READER_MS", 15_000, 100, 3_600_000),
    commandsPerSecond: integer("TAPE_COMMANDS_PER_SECOND", 50, 1, 1_000_000)
  }),
  store: Config.all({
    kind: oneOf("TAPE_STORE", "sqlite", ["sqlite", "memory", "postgres"], { postgresql: "postgres" }),
    dataDir: Config.map(text("TAPE_DATA"), Option.getOrElse(() => "./data")),
    databaseUrl: secret("DATABASE_URL"),
    toolWorkers: Config.map(oneOf("TAPE_TOOL_WORKERS", "in-process", ["in-process", "external"]), (v) => v === "external"),
    workerConcurrency: integer("TAPE_WORKER_CONCURRENCY", 4, 1, 256),
    leaseMs: integer("TAPE_LEASE_MS", 5_000, 300, 600_000)
  }),
  tools: Config.all({
    workspace: Config.map(text("TAPE_WORKSPACE"), Option.getOrElse(() => "./workspace")),
    httpAllow: list("TAPE_HTTP_ALLOW"),
    policies: withText("TAPE_TOOL_POLICY", {}, parsePolicies)
  }),
  loop: Config.all({
    maxTurnsPerMessage: integer("TAPE_MAX_TURNS_PER_MESSAGE", 25, 1, 10_000),
    contextTokens: Config.map(integer("TAPE_CONTEXT_TOKENS", 0, 1_000, 100_000_000), (n) => (n === 0 ? Option.none() : Option.some(n)))
  }),
  files: Config.all({ config: text("TAPE_CONFIG"), mcp: text("TAPE_MCP_CONFIG") }),
  logLevel: withText("TAPE_LOG_LEVEL", LogLevel.Info, (s) => {
    const level = logLevels[s.toLowerCase()]
    return level !== undefined ? Either.right(level) : Either.left(`expected one of ${Object.keys(logLevels).join(", ")}, got ${JSON.stringify(s)}`)
  })
})

/** The configuration read from the environment, once, when the layer is built. */
export const layer: Layer.Layer<AppConfig, ConfigError.ConfigError> = Layer.effect(AppConfig, appConfig)

/** The PostgreSQL URL when the store is shared by several processes, else none. */
export const clusterUrl = (c: AppConfigShape): Option.Option<Redacted.Redacted> =>
  c.store.kind === "postgres" ? c.store.databaseUrl : Option.none()

/** Fails start-up when the store needs a URL it was not given. */
export const checkStore = (c: AppConfigShape): Effect.Effect<void, ConfigError.ConfigError> =>
  c.store.kind === "postgres" && Option.isNone(c.store.databaseUrl)
    ? Effect.fail(ConfigError.MissingData(["DATABASE_URL"], "TAPE_STORE=postgres needs DATABASE_URL (e.g. postgres://user@host:5432/db)"))
    : Effect.void
