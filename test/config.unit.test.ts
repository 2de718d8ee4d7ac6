// One configuration (issue 11): every variable read once with Effect Config; a bad value is a ConfigError naming it.
import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either, Layer, LogLevel, Option, Redacted } from "effect"
import { UserConfig } from "../src/config/file.ts"
import { McpClients } from "../src/mcp/McpClients.ts"
import { appConfig, layer as appConfigLayer } from "../src/config/AppConfig.ts"
import { serverConfigOf } from "../src/server/Config.ts"
import { parsePolicies, ToolCatalogue } from "../src/tools/catalogue.ts"

const read = (env: Record<string, string>) =>
  Effect.runPromise(Effect.either(Effect.withConfigProvider(appConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))))

const errorOf = async (env: Record<string, string>): Promise<string> => {
  const result = await read(env)
  if (Either.isRight(result)) throw new Error(`expected a config error for ${JSON.stringify(env)}`)
  return String(result.left)
}

describe("AppConfig", () => {
  test("defaults when nothing is set", async () => {
    const c = Either.getOrThrow(await read({}))
    expect(c.server).toMatchObject({ host: "127.0.0.1", port: 3457, allowedOrigins: [], webRoot: "web/dist", slowReaderMs: 15_000, commandsPerSecond: 50 })
    expect(Option.isNone(c.server.token)).toBe(true)
    expect(c.store).toMatchObject({ kind: "sqlite", dataDir: "./data", toolWorkers: false, workerConcurrency: 4 })
    expect(c.tools).toEqual({ workspace: "./workspace", httpAllow: [], policies: {} })
    expect(c.loop.maxTurnsPerMessage).toBe(25)
    expect(c.logLevel).toBe(LogLevel.Info)
  })

  test("values are read and trimmed; an empty variable counts as unset", async () => {
    const c = Either.getOrThrow(
      await read({
        PORT: " 0 ",
        HOST: "",
        TAPE_TOKEN: "s3cret",
        TAPE_STORE: "PostgreSQL",
        DATABASE_URL: "postgres://x@y/z",
        TAPE_TOOL_WORKERS: "external",
        TAPE_WORKSPACE: "/srv/ws",
        TAPE_HTTP_ALLOW: " example.com, api.github.com ,",
        TAPE_TOOL_POLICY: "eval=auto,http_get=ask",
        TAPE_MAX_TURNS_PER_MESSAGE: "7",
        TAPE_LOG_LEVEL: "debug"
      })
    )
    expect(c.server.port).toBe(0)
    expect(c.server.host).toBe("127.0.0.1")
    expect(Option.map(c.server.token, Redacted.value)).toEqual(Option.some("s3cret"))
    expect(c.store.kind).toBe("postgres")
    expect(c.store.toolWorkers).toBe(true)
    expect(c.tools).toEqual({ workspace: "/srv/ws", httpAllow: ["example.com", "api.github.com"], policies: { eval: "auto", http_get: "ask" } })
    expect(c.loop.maxTurnsPerMessage).toBe(7)
    expect(c.logLevel).toBe(LogLevel.Debug)
  })

  test("a bad value stops start-up with an error that names the variable (none is silently ignored)", async () => {
    expect(await errorOf({ PORT: "80a" })).toContain("PORT")
    expect(await errorOf({ PORT: "70000" })).toContain("PORT")
    expect(await errorOf({ TAPE_SLOW_READER_MS: "soon" })).toContain("TAPE_SLOW_READER_MS")
    expect(await errorOf({ TAPE_COMMANDS_PER_SECOND: "0" })).toContain("TAPE_COMMANDS_PER_SECOND")
    expect(await errorOf({ TAPE_MAX_BUFFERED_BYTES: "-1" })).toContain("TAPE_MAX_BUFFERED_BYTES")
    expect(await errorOf({ TAPE_STORE: "mongo" })).toContain("TAPE_STORE")
    expect(await errorOf({ TAPE_TOOL_WORKERS: "yes" })).toContain("TAPE_TOOL_WORKERS")
    expect(await errorOf({ TAPE_LOG_LEVEL: "loud" })).toContain("TAPE_LOG_LEVEL")
    const policy = await errorOf({ TAPE_TOOL_POLICY: "eval=always" })
    expect(policy).toContain("TAPE_TOOL_POLICY")
    expect(policy).toContain('bad entry "eval=always"')
    expect(parsePolicies("nope=auto")).toEqual(Either.left(expect.stringContaining('bad entry "nope=auto"')))
  })

  test("a server off loopback without TAPE_TOKEN gets a generated token; on loopback it needs none", async () => {
    const off = Either.getOrThrow(await read({ HOST: "0.0.0.0" }))
    expect(serverConfigOf(off, () => "generated").token).toBe("generated")
    const on = Either.getOrThrow(await read({}))
    expect(serverConfigOf(on, () => "generated").token).toBeNull()
  })

  test("the catalogue layer is built from the configuration", async () => {
    const specs = await Effect.runPromise(
      Effect.map(ToolCatalogue, (tools) => tools.specs()).pipe(
        Effect.provide(ToolCatalogue.layer),
        Effect.provide(Layer.merge(UserConfig.empty, McpClients.Test)),
        Effect.provide(appConfigLayer),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["TAPE_TOOL_POLICY", "eval=auto"]])))
      )
    )
    expect(specs.find((spec) => spec.name === "eval")?.policy).toBe("auto")
  })
})
