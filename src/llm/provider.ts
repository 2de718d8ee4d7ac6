/**
 * The model choices (DESIGN.md §6): named models (provider, model id, options), one of them the default, read from
 * the environment with Effect Config or given by a config file; and the BAML client of each (a ClientRegistry).
 * Reads no process.env itself and starts nothing.
 */
import { ClientRegistry } from "@boundaryml/baml"
import { Config, ConfigError, Either, Option, Redacted } from "effect"

/** Where replies come from. `offline` and `scripted` are the in-process endpoint (src/llm/offline.ts). */
export type ProviderKind = "anthropic" | "openai" | "bedrock" | "openai-generic" | "offline" | "scripted"

/** One named model choice, as configured. */
export interface ModelSpec {
  /** What a session picks it by, and what TurnStarted.model records. */
  readonly name: string
  readonly provider: ProviderKind
  /** The provider's model id (`offline` / `scripted` for the in-process endpoint). */
  readonly model: string
  /** The provider's base URL (a gateway, proxy or compatible server); the provider's own when absent. */
  readonly baseUrl?: string
  readonly apiKey?: Redacted.Redacted<string>
  /** The reply's token limit (Anthropic requires one). */
  readonly maxTokens?: number
  /** The prompt's token budget; past it the writer compacts the memory. A default per provider when absent. */
  readonly contextTokens?: number
  /** AWS region (Bedrock). */
  readonly region?: string
}

/** The model choices and which one a call without a `model` gets. */
export interface ModelChoices {
  readonly models: ReadonlyArray<ModelSpec>
  /** The name of the default choice (one of `models`). */
  readonly default: string
}

/** A model choice as listed for `/api/info` and a model picker. */
export interface ModelInfo {
  readonly name: string
  readonly provider: ProviderKind
  readonly model: string
  readonly default: boolean
  readonly contextTokens: number
}

/** A BAML client definition, as handed to `ClientRegistry.addLlmClient`. */
export interface ClientSpec {
  /** BAML provider name, e.g. `anthropic`, `openai-generic`. */
  readonly provider: string
  /** Provider options (model, keys, base_url, headers). */
  readonly options: Readonly<Record<string, unknown>>
  /** A retry_policy declared in baml_src/chat.baml. */
  readonly retryPolicy: "TapeRetry" | "OfflineRetry"
}

/** Name of the runtime client in the registry. */
export const CLIENT_NAME = "TapeModel"

const DEFAULT_MODELS = {
  anthropic: "claude-sonnet-4-5",
  openai: "gpt-4.1",
  bedrock: "us.anthropic.claude-sonnet-4-20250514-v1:0",
  "openai-generic": "default"
} as const

/**
 * Token budgets of the prompt when a choice does not say: under what the providers' current models take (with room
 * for the reply); a compatible server is often a small local model; the built-in and scripted models have a small
 * one, so tests and demos reach compaction quickly.
 */
const DEFAULT_CONTEXT_TOKENS: Readonly<Record<ProviderKind, number>> = {
  anthropic: 150_000,
  openai: 150_000,
  bedrock: 150_000,
  "openai-generic": 8_192,
  offline: 8_000,
  scripted: 8_000
}

/** The prompt's token budget of a choice. */
export const contextTokensOf = (spec: ModelSpec): number => spec.contextTokens ?? DEFAULT_CONTEXT_TOKENS[spec.provider]

/**
 * The context budget of each model choice: `override` (TAPE_CONTEXT_TOKENS) when set, else the choice's own
 * `contextTokens` (the config file's, or its provider's default); a model this server has no choice for (an imported
 * tape's) gets the default choice's.
 */
export const contextBudget = (models: ReadonlyArray<ModelInfo>, override?: number) => {
  const byName = new Map(models.map((m) => [m.name, m.contextTokens]))
  const fallback = models.find((m) => m.default)?.contextTokens
  return (model: string): number | undefined => override ?? byName.get(model) ?? fallback
}

/** The choices as listed for `/api/info`. */
export const modelInfos = (choices: ModelChoices): ReadonlyArray<ModelInfo> =>
  choices.models.map((m) => ({ name: m.name, provider: m.provider, model: m.model, default: m.name === choices.default, contextTokens: contextTokensOf(m) }))

/** The BAML client of a choice; `offlineBaseUrl` is where the in-process endpoint listens (offline/scripted). */
export const clientSpec = (spec: ModelSpec, offlineBaseUrl: string): ClientSpec => {
  const key = spec.apiKey === undefined ? {} : { api_key: Redacted.value(spec.apiKey) }
  const baseUrl = spec.baseUrl === undefined ? {} : { base_url: spec.baseUrl }
  const maxTokens = spec.maxTokens === undefined ? {} : { max_tokens: spec.maxTokens }
  switch (spec.provider) {
    case "offline":
    case "scripted":
      return { provider: "openai-generic", options: { base_url: offlineBaseUrl, model: spec.provider, api_key: "offline" }, retryPolicy: "OfflineRetry" }
    case "anthropic":
      return { provider: "anthropic", options: { model: spec.model, ...key, ...baseUrl, max_tokens: spec.maxTokens ?? 4096 }, retryPolicy: "TapeRetry" }
    case "openai":
      return { provider: "openai", options: { model: spec.model, ...key, ...baseUrl, ...maxTokens }, retryPolicy: "TapeRetry" }
    case "bedrock":
      // Credentials are left to the AWS default chain (keys, session token or AWS_PROFILE).
      return { provider: "aws-bedrock", options: { model: spec.model, region: spec.region ?? "us-east-1" }, retryPolicy: "TapeRetry" }
    case "openai-generic":
      return { provider: "openai-generic", options: { model: spec.model, ...key, ...baseUrl, ...maxTokens }, retryPolicy: "TapeRetry" }
    default: {
      const _exhaustive: never = spec.provider
      return _exhaustive
    }
  }
}

/** Builds a registry with `client` as the primary client. */
export const makeRegistry = (client: ClientSpec): ClientRegistry => {
  const registry = new ClientRegistry()
  registry.addLlmClient(CLIENT_NAME, client.provider, { ...client.options }, client.retryPolicy)
  registry.setPrimary(CLIENT_NAME)
  return registry
}

const localSpec = (kind: "offline" | "scripted"): ModelSpec => ({ name: kind, provider: kind, model: kind })

/** The in-process endpoint's model as the only choice. */
export const localChoices = (kind: "offline" | "scripted"): ModelChoices => ({ models: [localSpec(kind)], default: kind })

// ---------------------------------------------------------------------------------------------
// From the environment

/** A variable that counts as unset when absent, empty or blank. */
const optional = (name: string): Config.Config<Option.Option<string>> =>
  Config.string(name).pipe(
    Config.option,
    Config.map(Option.flatMap((v) => (v.trim() === "" ? Option.none() : Option.some(v.trim()))))
  )

/** An http(s) URL, or a ConfigError naming the variable. */
const optionalUrl = (name: string): Config.Config<Option.Option<string>> =>
  optional(name).pipe(
    Config.mapOrFail((value): Either.Either<Option.Option<string>, ConfigError.ConfigError> => {
      if (Option.isNone(value)) return Either.right(value)
      const protocol = (() => {
        try {
          return new URL(value.value).protocol
        } catch {
          return undefined
        }
      })()
      return protocol === "http:" || protocol === "https:"
        ? Either.right(value)
        : Either.left(ConfigError.InvalidData([name], `expected an http:// or https:// URL, got ${JSON.stringify(value.value)}`))
    })
  )

/** The environment's model settings: the choices, and the script to play (LLM_SCRIPT), if any. */
export interface EnvModels {
  readonly choices: ModelChoices
  /** The path of the script file when LLM_SCRIPT is set (then the scripted model is the only choice). */
  readonly script: Option.Option<string>
}

/**
 * The model choices of the environment, the first one the default. `LLM_SCRIPT` alone makes the scripted model the
 * only choice (tests and demos must not reach a real provider by accident). Otherwise every provider whose variables
 * are set is a choice, in this order: ANTHROPIC_API_KEY (+ ANTHROPIC_BASE_URL), OPENAI_API_KEY (+ OPENAI_BASE_URL),
 * AWS credentials (AWS_ACCESS_KEY_ID or AWS_PROFILE; AWS_REGION), LLM_BASE_URL (+ LLM_MODEL, LLM_API_KEY); then the
 * offline model, which is the default when nothing else is set. LLM_MODEL also sets the default choice's model id.
 * A choice is named by its model id (provider-prefixed when two would share a name).
 */
export const envModelsConfig: Config.Config<EnvModels> = Config.all({
  script: optional("LLM_SCRIPT"),
  anthropicKey: optional("ANTHROPIC_API_KEY"),
  anthropicBaseUrl: optionalUrl("ANTHROPIC_BASE_URL"),
  openaiKey: optional("OPENAI_API_KEY"),
  openaiBaseUrl: optionalUrl("OPENAI_BASE_URL"),
  awsKey: optional("AWS_ACCESS_KEY_ID"),
  awsProfile: optional("AWS_PROFILE"),
  awsRegion: optional("AWS_REGION"),
  awsDefaultRegion: optional("AWS_DEFAULT_REGION"),
  llmBaseUrl: optionalUrl("LLM_BASE_URL"),
  llmModel: optional("LLM_MODEL"),
  llmApiKey: optional("LLM_API_KEY")
}).pipe(
  Config.map((env): EnvModels => {
    if (Option.isSome(env.script)) return { choices: localChoices("scripted"), script: env.script }
    const secret = (o: Option.Option<string>) => Option.getOrUndefined(Option.map(o, Redacted.make))
    const specs: Array<Omit<ModelSpec, "name">> = []
    const model = (fallback: string) => (specs.length === 0 ? Option.getOrElse(env.llmModel, () => fallback) : fallback)
    const url = (o: Option.Option<string>) => Option.match(o, { onNone: () => ({}), onSome: (baseUrl) => ({ baseUrl }) })
    const key = (o: Option.Option<string>) => {
      const apiKey = secret(o)
      return apiKey === undefined ? {} : { apiKey }
    }
    if (Option.isSome(env.anthropicKey)) {
      specs.push({ provider: "anthropic", model: model(DEFAULT_MODELS.anthropic), ...key(env.anthropicKey), ...url(env.anthropicBaseUrl) })
    }
    if (Option.isSome(env.openaiKey)) {
      specs.push({ provider: "openai", model: model(DEFAULT_MODELS.openai), ...key(env.openaiKey), ...url(env.openaiBaseUrl) })
    }
    if (Option.isSome(env.awsKey) || Option.isSome(env.awsProfile)) {
      const region = Option.getOrElse(Option.orElse(env.awsRegion, () => env.awsDefaultRegion), () => "us-east-1")
      specs.push({ provider: "bedrock", model: model(DEFAULT_MODELS.bedrock), region })
    }
    if (Option.isSome(env.llmBaseUrl)) {
      const m = Option.getOrElse(env.llmModel, () => DEFAULT_MODELS["openai-generic"])
      specs.push({ provider: "openai-generic", model: m, ...key(env.llmApiKey), ...url(env.llmBaseUrl) })
    }
    specs.push(localSpec("offline"))
    return { choices: namedChoices(specs), script: Option.none() }
  })
)

/** Names each spec by its model id, provider-prefixed on a clash; the first is the default. */
const namedChoices = (specs: ReadonlyArray<Omit<ModelSpec, "name">>): ModelChoices => {
  const taken = new Set<string>()
  const models = specs.map((spec): ModelSpec => {
    const name = taken.has(spec.model) ? `${spec.provider}:${spec.model}` : spec.model
    taken.add(name)
    return { name, ...spec }
  })
  return { models, default: models[0]?.name ?? "offline" }
}
