// Model choices (DESIGN.md §6): read from the environment with Config, and each choice's BAML client.
import { ClientRegistry } from "@boundaryml/baml"
import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either, Option, Redacted } from "effect"
import { clientSpec, envModelsConfig, type EnvModels, makeRegistry, modelInfos } from "../src/llm/provider.ts"

const read = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(Effect.withConfigProvider(envModelsConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))

const choices = (env: Record<string, string>): EnvModels => {
  const result = read(env)
  if (Either.isLeft(result)) throw new Error(String(result.left))
  return result.right
}

const offlineUrl = "http://127.0.0.1:5555/v1"

describe("model choices from the environment", () => {
  test("nothing configured → the offline model, the only choice and the default", () => {
    const { choices: c, script } = choices({})
    expect(c.models.map((m) => [m.name, m.provider])).toEqual([["offline", "offline"]])
    expect(c.default).toBe("offline")
    expect(Option.isNone(script)).toBe(true)
    const spec = clientSpec(c.models[0]!, offlineUrl)
    expect(spec).toEqual({ provider: "openai-generic", options: { base_url: offlineUrl, model: "offline", api_key: "offline" }, retryPolicy: "OfflineRetry" })
  })

  test("LLM_SCRIPT → the scripted model only, even when real keys are set", () => {
    const { choices: c, script } = choices({ LLM_SCRIPT: "s.json", ANTHROPIC_API_KEY: "sk-ant", OPENAI_API_KEY: "sk" })
    expect(c.models.map((m) => m.name)).toEqual(["scripted"])
    expect(c.default).toBe("scripted")
    expect(Option.getOrNull(script)).toBe("s.json")
  })

  test("every configured provider is a choice, in order, the first the default, offline last", () => {
    const { choices: c } = choices({ ANTHROPIC_API_KEY: "sk-ant", OPENAI_API_KEY: "sk", AWS_PROFILE: "dev", AWS_REGION: "eu-west-1", LLM_BASE_URL: "http://localhost:11434/v1", LLM_MODEL: "llama3.2" })
    expect(c.models.map((m) => [m.name, m.provider])).toEqual([
      ["llama3.2", "anthropic"],
      ["gpt-4.1", "openai"],
      ["us.anthropic.claude-sonnet-4-20250514-v1:0", "bedrock"],
      ["openai-generic:llama3.2", "openai-generic"],
      ["offline", "offline"]
    ])
    expect(c.default).toBe("llama3.2")
    expect(modelInfos(c).filter((m) => m.default).map((m) => m.name)).toEqual(["llama3.2"])
    expect(clientSpec(c.models[2]!, offlineUrl).options["region"]).toBe("eu-west-1")
  })

  test("ANTHROPIC_BASE_URL and OPENAI_BASE_URL go to their providers; keys stay redacted until the client is built", () => {
    const { choices: c } = choices({ ANTHROPIC_API_KEY: "sk-ant", ANTHROPIC_BASE_URL: "http://gw.local:8080", OPENAI_API_KEY: "sk-oa", OPENAI_BASE_URL: "https://proxy.example/v1" })
    const [anthropic, openai] = c.models
    expect(anthropic?.baseUrl).toBe("http://gw.local:8080")
    expect(String(anthropic?.apiKey)).not.toContain("sk-ant")
    expect(anthropic?.apiKey && Redacted.value(anthropic.apiKey)).toBe("sk-ant")
    expect(clientSpec(anthropic!, offlineUrl)).toEqual({
      provider: "anthropic",
      options: { model: "claude-sonnet-4-5", api_key: "sk-ant", base_url: "http://gw.local:8080", max_tokens: 4096 },
      retryPolicy: "TapeRetry"
    })
    expect(clientSpec(openai!, offlineUrl).options).toEqual({ model: "gpt-4.1", api_key: "sk-oa", base_url: "https://proxy.example/v1" })
  })

  test("a base URL that is not http(s) is a ConfigError naming the variable", () => {
    for (const name of ["ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "LLM_BASE_URL"]) {
      const result = read({ ANTHROPIC_API_KEY: "k", OPENAI_API_KEY: "k", [name]: "ftp://nope" })
      expect(Either.isLeft(result) && String(result.left)).toContain(name)
    }
    expect(Either.isLeft(read({ ANTHROPIC_API_KEY: "k", ANTHROPIC_BASE_URL: "not a url" }))).toBe(true)
  })

  test("empty and blank variables count as unset", () => {
    expect(choices({ ANTHROPIC_API_KEY: "", OPENAI_API_KEY: "  ", LLM_SCRIPT: "" }).choices.models.map((m) => m.name)).toEqual(["offline"])
  })

  test("each choice gets a registry; contextTokens has a default per provider", () => {
    const { choices: c } = choices({ ANTHROPIC_API_KEY: "k" })
    expect(makeRegistry(clientSpec(c.models[0]!, offlineUrl))).toBeInstanceOf(ClientRegistry)
    expect(modelInfos(c)).toEqual([
      { name: "claude-sonnet-4-5", provider: "anthropic", model: "claude-sonnet-4-5", default: true, contextTokens: 150_000 },
      { name: "offline", provider: "offline", model: "offline", default: false, contextTokens: 8_000 }
    ])
  })
})
