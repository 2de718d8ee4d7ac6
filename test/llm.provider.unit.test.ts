// Provider selection (DESIGN.md §6): a pure function of the environment.
import { ClientRegistry } from "@boundaryml/baml"
import { describe, expect, test } from "bun:test"
import { providerKind, selectProvider } from "../src/llm/provider.ts"

const offline = { baseUrl: "http://127.0.0.1:5555/v1" }

describe("provider selection", () => {
  test("no provider configured → the offline model at the in-process endpoint", () => {
    const p = selectProvider({}, offline)
    expect(p.kind).toBe("offline")
    expect(p.model).toBe("offline")
    expect(p.client.provider).toBe("openai-generic")
    expect(p.client.options["base_url"]).toBe(offline.baseUrl)
    expect(p.client.retryPolicy).toBe("OfflineRetry")
    expect(p.registry).toBeInstanceOf(ClientRegistry)
  })

  test("LLM_SCRIPT → scripted, even when a real key is set", () => {
    const p = selectProvider({ LLM_SCRIPT: "s.json", ANTHROPIC_API_KEY: "sk-ant", OPENAI_API_KEY: "sk" }, offline)
    expect(p.kind).toBe("scripted")
    expect(p.model).toBe("scripted")
    expect(p.client.options["base_url"]).toBe(offline.baseUrl)
  })

  test("ANTHROPIC_API_KEY → Anthropic, and it wins over OpenAI and AWS", () => {
    const p = selectProvider({ ANTHROPIC_API_KEY: "sk-ant", OPENAI_API_KEY: "sk", AWS_PROFILE: "dev" })
    expect(p.kind).toBe("anthropic")
    expect(p.model).toStartWith("claude-")
    expect(p.client.provider).toBe("anthropic")
    expect(p.client.options["api_key"]).toBe("sk-ant")
    expect(p.client.options["model"]).toBe(p.model)
    expect(p.client.retryPolicy).toBe("TapeRetry")
  })

  test("OPENAI_API_KEY → OpenAI", () => {
    const p = selectProvider({ OPENAI_API_KEY: "sk", AWS_ACCESS_KEY_ID: "AKIA" })
    expect(p.kind).toBe("openai")
    expect(p.client.provider).toBe("openai")
    expect(p.client.options["api_key"]).toBe("sk")
  })

  test("AWS credentials → Bedrock, in AWS_REGION", () => {
    expect(providerKind({ AWS_ACCESS_KEY_ID: "AKIA", AWS_SECRET_ACCESS_KEY: "x" })).toBe("bedrock")
    const p = selectProvider({ AWS_PROFILE: "dev", AWS_REGION: "eu-west-1", LLM_BASE_URL: "http://x" })
    expect(p.kind).toBe("bedrock")
    expect(p.client.provider).toBe("aws-bedrock")
    expect(p.client.options["region"]).toBe("eu-west-1")
  })

  test("LLM_BASE_URL + LLM_MODEL → openai-generic", () => {
    const p = selectProvider({ LLM_BASE_URL: "http://localhost:11434/v1", LLM_MODEL: "llama3.2" })
    expect(p.kind).toBe("openai-generic")
    expect(p.model).toBe("llama3.2")
    expect(p.client.provider).toBe("openai-generic")
    expect(p.client.options["base_url"]).toBe("http://localhost:11434/v1")
    expect(p.client.options["model"]).toBe("llama3.2")
  })

  test("LLM_MODEL overrides a real provider's default model", () => {
    expect(selectProvider({ ANTHROPIC_API_KEY: "k", LLM_MODEL: "claude-opus-4-1" }).model).toBe("claude-opus-4-1")
  })

  test("empty variables count as unset", () => {
    expect(providerKind({ ANTHROPIC_API_KEY: "", OPENAI_API_KEY: "  ", LLM_SCRIPT: "" })).toBe("offline")
  })

  test("registryWith builds a registry carrying extra headers", () => {
    const p = selectProvider({}, offline)
    expect(p.registryWith({ "x-tape-turn": "t1" })).toBeInstanceOf(ClientRegistry)
  })
})
