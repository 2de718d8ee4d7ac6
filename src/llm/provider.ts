/**
 * Picks the model provider from the environment (DESIGN.md §6) and builds BAML's ClientRegistry for it.
 * A pure function of its arguments: reads no process.env itself and starts nothing.
 */
import { ClientRegistry } from "@boundaryml/baml"

/** Where replies come from. `offline` and `scripted` are the in-process endpoint (src/llm/offline.ts). */
export type ProviderKind = "anthropic" | "openai" | "bedrock" | "openai-generic" | "offline" | "scripted"

/** The environment variables that matter here (unset and empty mean the same). */
export type Env = Readonly<Record<string, string | undefined>>

/** A BAML client definition, as handed to `ClientRegistry.addLlmClient`. */
export interface ClientSpec {
  /** BAML provider name, e.g. `anthropic`, `openai-generic`. */
  readonly provider: string
  /** Provider options (model, keys, base_url, headers). */
  readonly options: Readonly<Record<string, unknown>>
  /** A retry_policy declared in baml_src/chat.baml. */
  readonly retryPolicy: "TapeRetry" | "OfflineRetry"
}

/** The chosen provider. */
export interface Provider {
  readonly kind: ProviderKind
  /** Display name recorded on TurnStarted: `offline`, `scripted`, or the provider's model id. */
  readonly model: string
  readonly client: ClientSpec
  /** A registry whose primary client is `client`. */
  readonly registry: ClientRegistry
  /** The same client with extra HTTP headers (the offline endpoint reads the turn id from one). */
  readonly registryWith: (headers: Readonly<Record<string, string>>) => ClientRegistry
}

/** Name of the runtime client in the registry. */
export const CLIENT_NAME = "TapeModel"

const DEFAULT_MODELS = {
  anthropic: "claude-sonnet-4-5",
  openai: "gpt-4.1",
  bedrock: "us.anthropic.claude-sonnet-4-20250514-v1:0",
  "openai-generic": "default"
} as const

const set = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim()
  return v === undefined || v === "" ? undefined : v
}

/**
 * Which provider the environment asks for. `LLM_SCRIPT` wins (tests and demos must not reach a
 * real provider by accident), then ANTHROPIC_API_KEY, OPENAI_API_KEY, AWS credentials
 * (AWS_ACCESS_KEY_ID or AWS_PROFILE), LLM_BASE_URL; with none of them, the offline model.
 */
export const providerKind = (env: Env): ProviderKind => {
  if (set(env, "LLM_SCRIPT") !== undefined) return "scripted"
  if (set(env, "ANTHROPIC_API_KEY") !== undefined) return "anthropic"
  if (set(env, "OPENAI_API_KEY") !== undefined) return "openai"
  if (set(env, "AWS_ACCESS_KEY_ID") !== undefined || set(env, "AWS_PROFILE") !== undefined) return "bedrock"
  if (set(env, "LLM_BASE_URL") !== undefined) return "openai-generic"
  return "offline"
}

/** The client spec for `env`; `offlineBaseUrl` is where the in-process endpoint listens (offline/scripted). */
export const clientSpec = (env: Env, offlineBaseUrl: string): { kind: ProviderKind; model: string; client: ClientSpec } => {
  const kind = providerKind(env)
  // LLM_MODEL overrides the default model of any real provider.
  const model = (fallback: string) => set(env, "LLM_MODEL") ?? fallback
  switch (kind) {
    case "scripted":
    case "offline":
      return {
        kind,
        model: kind,
        client: {
          provider: "openai-generic",
          options: { base_url: offlineBaseUrl, model: kind, api_key: "offline" },
          retryPolicy: "OfflineRetry"
        }
      }
    case "anthropic": {
      const m = model(DEFAULT_MODELS.anthropic)
      return {
        kind,
        model: m,
        client: {
          provider: "anthropic",
          options: { model: m, api_key: set(env, "ANTHROPIC_API_KEY"), max_tokens: 4096 },
          retryPolicy: "TapeRetry"
        }
      }
    }
    case "openai": {
      const m = model(DEFAULT_MODELS.openai)
      return {
        kind,
        model: m,
        client: { provider: "openai", options: { model: m, api_key: set(env, "OPENAI_API_KEY") }, retryPolicy: "TapeRetry" }
      }
    }
    case "bedrock": {
      const m = model(DEFAULT_MODELS.bedrock)
      const region = set(env, "AWS_REGION") ?? set(env, "AWS_DEFAULT_REGION") ?? "us-east-1"
      // Credentials are left to the AWS default chain (keys, session token or AWS_PROFILE).
      return { kind, model: m, client: { provider: "aws-bedrock", options: { model: m, region }, retryPolicy: "TapeRetry" } }
    }
    case "openai-generic": {
      const m = model(DEFAULT_MODELS["openai-generic"])
      const apiKey = set(env, "LLM_API_KEY")
      return {
        kind,
        model: m,
        client: {
          provider: "openai-generic",
          options: { base_url: set(env, "LLM_BASE_URL"), model: m, ...(apiKey === undefined ? {} : { api_key: apiKey }) },
          retryPolicy: "TapeRetry"
        }
      }
    }
    default: {
      const _exhaustive: never = kind
      return _exhaustive
    }
  }
}

/** Builds a registry with `client` as the primary client. */
export const makeRegistry = (client: ClientSpec, headers: Readonly<Record<string, string>> = {}): ClientRegistry => {
  const registry = new ClientRegistry()
  const options = Object.keys(headers).length === 0 ? { ...client.options } : { ...client.options, headers: { ...headers } }
  registry.addLlmClient(CLIENT_NAME, client.provider, options, client.retryPolicy)
  registry.setPrimary(CLIENT_NAME)
  return registry
}

/** The provider for `env`. Pass the offline endpoint's base URL when `providerKind(env)` is offline or scripted. */
export const selectProvider = (env: Env, offline: { readonly baseUrl: string } = { baseUrl: "http://127.0.0.1:0/v1" }): Provider => {
  const { kind, model, client } = clientSpec(env, offline.baseUrl)
  return { kind, model, client, registry: makeRegistry(client), registryWith: (headers) => makeRegistry(client, headers) }
}
