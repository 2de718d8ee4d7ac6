/**
 * The user's config file (`agent-tape.config.ts`, or TAPE_CONFIG: `.ts`, `.js` or `.json`): instructions, user tools,
 * built-in tool settings, MCP servers and models. `defineConfig` and `tool` are what the file imports from
 * "agent-tape"; `loadConfigFile` reads and checks one, naming the file, the key and what is wrong.
 */
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { extname, resolve } from "node:path"
import { Config, type ConfigError, Context, Data, Effect, Either, Layer, Option, type ParseResult, Redacted, Schema } from "effect"
import type { ModelChoices, ModelSpec } from "../llm/provider.ts"
import { AppConfig } from "./AppConfig.ts"
import { describeParseError, parseJsonText } from "../domain/safeJson.ts"
import { decodeMcpServers, loadMcpConfigFile, type McpConfigError, type McpServerConfig } from "../mcp/config.ts"
import { toolNames } from "../tools/policies.ts"

/** `ask`: a user approves each call; `auto`: approved by policy. */
export type Policy = "ask" | "auto"

/** What a user tool's `run` is given besides its args. */
export interface ToolContext {
  /** Aborted when the call is interrupted (a user's stop, a shutdown): stop the work. */
  readonly signal: AbortSignal
  /** The session the call belongs to. */
  readonly session: string
  /** The call's id on the tape. */
  readonly callId: string
}

/** The Standard Schema interface (zod, valibot, arktype…): enough to validate with it. */
export interface StandardSchemaV1<Output = unknown> {
  readonly "~standard": {
    readonly version: 1
    readonly vendor: string
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>
  }
}
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> }> }

/** A user tool, as `tool({...})` makes it. */
export interface ToolDefinition<A> {
  /** One line for the model and the tool card. */
  readonly description: string
  /** The args: an Effect Schema, or any Standard Schema (zod, valibot…). */
  readonly args: Schema.Schema<A, any> | StandardSchemaV1<A>
  /** The args' JSON Schema for the model, when `args` is a Standard Schema that cannot say it (else derived). */
  readonly jsonSchema?: { readonly [key: string]: unknown }
  /** `ask` (default), `auto`, or a function of the (valid) args choosing one, e.g. auto for reads, ask for writes. */
  readonly policy?: Policy | ((args: A) => Policy)
  /** Runs the call: a string or any JSON value, as a value, a Promise or an Effect. Throwing is a failed call. */
  readonly run: (args: A, context: ToolContext) => unknown
  /** Time limit of one call in ms (default 60000). */
  readonly timeoutMs?: number
}

/** A user tool: its definition, marked so the loader can tell it from anything else. */
export interface UserTool<A = any> extends ToolDefinition<A> {
  readonly _tag: "UserTool"
}

/** Defines a user tool for the config's `tools` (the key is its name). */
export const tool = <A>(definition: ToolDefinition<A>): UserTool<A> => ({ ...definition, _tag: "UserTool" })

/** A built-in tool's settings: `false` turns it off. */
export interface BuiltinSettings {
  readonly policy?: Policy
  /** `read_file` / `list_files`: the folder they may read. */
  readonly workspace?: string
  /** `http_get`: the hosts it may reach. */
  readonly allow?: ReadonlyArray<string>
  /** `eval`: time limit per call (ms); `http_get`: the whole call's. */
  readonly timeoutMs?: number
  /** `eval`: characters of output kept; `read_file`, `http_get`: bytes read. */
  readonly maxOutput?: number
}

/** A named model choice (the model picker offers them; TurnStarted.model records the name). */
export interface ModelDefinition {
  readonly provider: "anthropic" | "openai" | "openai-generic" | "bedrock"
  readonly model: string
  readonly baseUrl?: string
  /** The key itself, or (better) `apiKeyEnv`: the variable that holds it. */
  readonly apiKey?: string
  readonly apiKeyEnv?: string
  readonly maxTokens?: number
  readonly contextTokens?: number
  readonly region?: string
}

/** What a config file exports (default). */
export interface AgentConfig {
  /** The system prompt's own text (the runtime still adds the tool list and the output format). */
  readonly instructions?: string
  /** User tools by name. */
  readonly tools?: Readonly<Record<string, UserTool>>
  /** The built-in tools' settings; the config wins over TAPE_TOOL_POLICY, TAPE_WORKSPACE and TAPE_HTTP_ALLOW. */
  readonly builtins?: Partial<Record<(typeof toolNames)[number], false | BuiltinSettings>>
  /** MCP servers, in the shape MCP clients use (`command`/`args`/`env` or `url`/`headers`), plus `policy`, `tools`. */
  readonly mcpServers?: Readonly<Record<string, unknown>>
  /** Named models; `default` names the one new sessions use. */
  readonly models?: { readonly default?: string; readonly choices: Readonly<Record<string, ModelDefinition>> }
}

/** The config a file declares (types only: `defineConfig` returns what it is given). */
export const defineConfig = (config: AgentConfig): AgentConfig => config

/** A config file that cannot be used: the file, the key and what is wrong. */
export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{
  readonly file: string
  readonly key: string
  readonly problem: string
}> {
  override get message(): string {
    return `${this.file}: ${this.key === "" ? "" : `${this.key}: `}${this.problem}`
  }
}

/** A checked config: what the rest of the server uses. */
export interface LoadedConfig {
  readonly file: string | null
  readonly instructions: string | null
  readonly tools: ReadonlyArray<{ readonly name: string; readonly tool: UserTool }>
  readonly builtins: NonNullable<AgentConfig["builtins"]>
  readonly mcpServers: ReadonlyArray<McpServerConfig>
  readonly models: AgentConfig["models"] | null
}

/** No file: the built-in defaults. */
export const emptyConfig: LoadedConfig = { file: null, instructions: null, tools: [], builtins: {}, mcpServers: [], models: null }

/** Longest `instructions` accepted (characters). */
export const MAX_INSTRUCTIONS_CHARS = 20_000
const TOOL_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/
const KEYS = new Set(["instructions", "tools", "builtins", "mcpServers", "models"])

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/** An optional key that is absent or set, never `undefined` (configs are data). */
const opt = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })
const Positive = Schema.Int.pipe(Schema.between(1, 1_000_000_000))
const PolicySchema = Schema.Literal("ask", "auto")
const BuiltinSchema = Schema.Union(
  Schema.Literal(false),
  Schema.Struct({
    policy: opt(PolicySchema),
    workspace: opt(Schema.String.pipe(Schema.minLength(1))),
    allow: opt(Schema.Array(Schema.String)),
    timeoutMs: opt(Positive),
    maxOutput: opt(Positive)
  })
)
const BuiltinsSchema = Schema.Struct({ eval: opt(BuiltinSchema), read_file: opt(BuiltinSchema), list_files: opt(BuiltinSchema), http_get: opt(BuiltinSchema) })
const ModelSchema = Schema.Struct({
  provider: Schema.Literal("anthropic", "openai", "openai-generic", "bedrock"),
  model: Schema.String.pipe(Schema.minLength(1)),
  baseUrl: opt(Schema.String.pipe(Schema.filter((s) => /^https?:\/\//.test(s), { message: () => "must be an http(s) URL" }))),
  apiKey: opt(Schema.String),
  apiKeyEnv: opt(Schema.String),
  maxTokens: opt(Positive),
  contextTokens: opt(Positive),
  region: opt(Schema.String)
})
const ModelsSchema = Schema.Struct({
  default: opt(Schema.String),
  choices: Schema.Record({ key: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/)), value: ModelSchema })
})

/** The first issue of a decode as a key path and what is wrong, in the one bounded wording (never the value). */
const firstIssue = (error: ParseResult.ParseError): { readonly path: string; readonly problem: string } => {
  const [first = ""] = describeParseError(error).split("; ")
  const colon = first.indexOf(": ")
  return colon < 0 ? { path: "", problem: first } : { path: first.slice(0, colon), problem: first.slice(colon + 2) }
}

const decodeWith = <A, I>(schema: Schema.Schema<A, I>, value: unknown, file: string, key: string) =>
  Either.mapLeft(Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })(value), (e) => {
    const { path, problem } = firstIssue(e)
    return new ConfigFileError({ file, key: path === "" ? key : `${key}.${path}`, problem })
  })

const isEffectSchema = (v: unknown): boolean => Schema.isSchema(v)
const isStandardSchema = (v: unknown): boolean =>
  isRecord(v) || typeof v === "function" ? isRecord((v as { "~standard"?: unknown })["~standard"]) : false

/** Checks one user tool: a `tool({...})` with a description, an args schema, a run function and a valid policy. */
const checkTool = (file: string, name: string, value: unknown): Either.Either<UserTool, ConfigFileError> => {
  const fail = (key: string, problem: string) => Either.left(new ConfigFileError({ file, key: `tools.${name}${key}`, problem }))
  if (!TOOL_NAME.test(name)) return fail("", "a tool name is a letter, then letters, digits, _ or -, at most 64 characters")
  if ((toolNames as ReadonlyArray<string>).includes(name)) return fail("", `is a built-in tool's name; use builtins.${name} to set it, or choose another name`)
  if (!isRecord(value) || value._tag !== "UserTool") return fail("", "must be made with tool({ description, args, policy, run }) from \"agent-tape\"")
  const t = value as unknown as UserTool
  if (typeof t.description !== "string" || t.description.trim() === "") return fail(".description", "must be a non-empty string")
  if (typeof t.run !== "function") return fail(".run", "is missing: a tool needs a run(args, { signal, session, callId }) function")
  if (!isEffectSchema(t.args) && !isStandardSchema(t.args)) return fail(".args", "must be an Effect Schema or a Standard Schema (zod, valibot…)")
  if (t.policy !== undefined && t.policy !== "ask" && t.policy !== "auto" && typeof t.policy !== "function") {
    return fail(".policy", 'must be "ask", "auto" or a function of the args returning one of them')
  }
  if (t.timeoutMs !== undefined && !(Number.isInteger(t.timeoutMs) && t.timeoutMs > 0)) return fail(".timeoutMs", "must be a whole number of milliseconds")
  return Either.right(t)
}

/** Checks what a config file exported. */
export const checkConfig = (file: string, exported: unknown): Either.Either<LoadedConfig, ConfigFileError> => {
  if (!isRecord(exported)) return Either.left(new ConfigFileError({ file, key: "", problem: "must export (default) an object: export default defineConfig({ ... })" }))
  for (const key of Object.keys(exported)) {
    if (!KEYS.has(key)) return Either.left(new ConfigFileError({ file, key, problem: `is not a known key (the keys are ${[...KEYS].join(", ")})` }))
  }
  const { instructions, tools, builtins, mcpServers, models } = exported
  if (instructions !== undefined && (typeof instructions !== "string" || instructions.length > MAX_INSTRUCTIONS_CHARS)) {
    return Either.left(new ConfigFileError({ file, key: "instructions", problem: `must be a string of at most ${MAX_INSTRUCTIONS_CHARS} characters` }))
  }
  const checkedTools: Array<{ readonly name: string; readonly tool: UserTool }> = []
  if (tools !== undefined) {
    if (!isRecord(tools)) return Either.left(new ConfigFileError({ file, key: "tools", problem: "must be an object of tools by name" }))
    for (const [name, value] of Object.entries(tools)) {
      const t = checkTool(file, name, value)
      if (Either.isLeft(t)) return Either.left(t.left)
      checkedTools.push({ name, tool: t.right })
    }
  }
  const checkedBuiltins = builtins === undefined ? Either.right({}) : decodeWith(BuiltinsSchema, builtins, file, "builtins")
  if (Either.isLeft(checkedBuiltins)) return Either.left(checkedBuiltins.left)
  const checkedModels = models === undefined ? Either.right(null) : decodeWith(ModelsSchema, models, file, "models")
  if (Either.isLeft(checkedModels)) return Either.left(checkedModels.left)
  const m = checkedModels.right
  if (m !== null && m.default !== undefined && !(m.default in m.choices)) {
    return Either.left(new ConfigFileError({ file, key: "models.default", problem: `names no choice (the choices are ${Object.keys(m.choices).join(", ")})` }))
  }
  const servers = mcpServers === undefined ? Either.right([]) : decodeMcpServers(mcpServers, file)
  if (Either.isLeft(servers)) {
    const first = servers.left.issues[0]
    return Either.left(new ConfigFileError({ file, key: first?.key ?? "mcpServers", problem: first?.problem ?? "is not valid" }))
  }
  return Either.right({
    file,
    instructions: typeof instructions === "string" && instructions.trim() !== "" ? instructions : null,
    tools: checkedTools,
    builtins: checkedBuiltins.right,
    mcpServers: servers.right,
    models: m
  })
}

/** The path the config comes from: TAPE_CONFIG, or `./agent-tape.config.ts` when it exists; null for none. */
export const configPath = (given: string | undefined, cwd: string = process.cwd()): string | null => {
  if (given !== undefined && given.trim() !== "") return resolve(cwd, given.trim())
  const fallback = resolve(cwd, "agent-tape.config.ts")
  return existsSync(fallback) ? fallback : null
}

/** The package's own entry, for config files outside this folder that import "agent-tape". */
const PACKAGE_ENTRY = resolve(import.meta.dir, "../index.ts")
let resolverInstalled = false

/** Lets a config file anywhere import "agent-tape" (and "agent-tape/testing"), as if the package were installed there. */
const installResolver = () => {
  if (resolverInstalled) return
  resolverInstalled = true
  Bun.plugin({
    name: "agent-tape",
    setup(build) {
      // Virtual modules: the package's own entries, loaded from this checkout.
      build.module("agent-tape", async () => ({ exports: await import(PACKAGE_ENTRY), loader: "object" }))
      build.module("agent-tape/testing", async () => ({ exports: await import(resolve(import.meta.dir, "../testing.ts")), loader: "object" }))
    }
  })
}

/** Reads and checks a config file (`.ts`, `.js`: its default export; `.json`: data only, no tools). */
export const loadConfigFile = Effect.fn("Config.loadFile")(function* (path: string) {
  const file = path
  const problem = (p: string) => new ConfigFileError({ file, key: "", problem: p })
  const ext = extname(path).toLowerCase()
  if (ext === ".json") {
    const text = yield* Effect.tryPromise({ try: () => readFile(path, "utf8"), catch: (e) => problem(`cannot be read (${e instanceof Error ? e.message : String(e)})`) })
    const parsed = parseJsonText(text, { maxBytes: 1024 * 1024 })
    if (Either.isLeft(parsed)) return yield* problem(`is not valid JSON: ${parsed.left.message}`)
    if (isRecord(parsed.right) && "tools" in parsed.right) {
      return yield* new ConfigFileError({ file, key: "tools", problem: "user tools need run functions: write them in a .ts or .js config file" })
    }
    return yield* checkConfig(file, parsed.right)
  }
  if (ext !== ".ts" && ext !== ".js" && ext !== ".mjs") return yield* problem("must be a .ts, .js or .json file")
  if (!existsSync(path)) return yield* problem("does not exist")
  installResolver()
  const module = yield* Effect.tryPromise({
    try: (): Promise<unknown> => import(path),
    catch: (e) => problem(`could not be loaded: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}`)
  })
  const exported = isRecord(module) && "default" in module ? module.default : undefined
  return yield* checkConfig(file, exported)
})

/**
 * The config file this process runs with (`tape/UserConfig`): TAPE_CONFIG or `./agent-tape.config.ts`, and the
 * servers of a plain MCP file named by TAPE_MCP_CONFIG (a server the config file names too is the config file's).
 */
export class UserConfig extends Context.Tag("tape/UserConfig")<UserConfig, LoadedConfig>() {
  static readonly layer: Layer.Layer<UserConfig, ConfigFileError | McpConfigError, AppConfig> = Layer.effect(
    UserConfig,
    Effect.gen(function* () {
      const { files } = yield* AppConfig
      const path = configPath(Option.getOrUndefined(files.config))
      const loaded = path === null ? emptyConfig : yield* loadConfigFile(path)
      if (Option.isNone(files.mcp)) return loaded
      const named = new Set(loaded.mcpServers.map((s) => s.name))
      const extra = (yield* loadMcpConfigFile(files.mcp.value)).filter((s) => !named.has(s.name))
      return { ...loaded, mcpServers: [...loaded.mcpServers, ...extra] }
    })
  )
  /** No config file. */
  static readonly empty: Layer.Layer<UserConfig> = Layer.succeed(UserConfig, emptyConfig)
}

/**
 * The config's `models` as the LLM client's choices; a key named by `apiKeyEnv` is read from the environment (a
 * missing one is a ConfigError naming it). None when the config has no models.
 */
export const modelChoicesOf = (models: AgentConfig["models"] | null): Effect.Effect<ModelChoices | undefined, ConfigError.ConfigError> =>
  Effect.gen(function* () {
    if (models === null || models === undefined) return undefined
    const specs: Array<ModelSpec> = []
    for (const [name, m] of Object.entries(models.choices)) {
      const apiKey = m.apiKeyEnv !== undefined ? yield* Config.redacted(m.apiKeyEnv) : m.apiKey !== undefined ? Redacted.make(m.apiKey) : undefined
      specs.push({
        name,
        provider: m.provider,
        model: m.model,
        ...(m.baseUrl === undefined ? {} : { baseUrl: m.baseUrl }),
        ...(apiKey === undefined ? {} : { apiKey }),
        ...(m.maxTokens === undefined ? {} : { maxTokens: m.maxTokens }),
        ...(m.contextTokens === undefined ? {} : { contextTokens: m.contextTokens }),
        ...(m.region === undefined ? {} : { region: m.region })
      })
    }
    const first = specs[0]
    if (first === undefined) return undefined
    return { models: specs, default: models.default ?? first.name }
  })
