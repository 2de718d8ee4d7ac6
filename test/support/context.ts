/**
 * The DecideContext of the tests: model "scripted" and a two-tool catalogue (`eval` asks, `read_file` is auto),
 * validated with Effect Schema like the real catalogue; and the writer's layers over a fresh memory store. Runs no tool.
 */
import { ConfigProvider, Effect, Either, Layer, ParseResult, Schema } from "effect"
import { appConfig } from "../../src/config/AppConfig.ts"
import { type ServerConfig, serverConfigOf } from "../../src/server/Config.ts"
import type { DecideContext, ToolCheck } from "../../src/domain/decide.ts"
import type { JsonObject } from "../../src/domain/Event.ts"
import { layer as busLayer } from "../../src/session/Bus.ts"
import { layer as writerLayer, WriterContext } from "../../src/session/SessionWriter.ts"
import { layerMemory } from "../../src/store/memory.ts"

export const MODEL = "scripted"

const EvalArgs = Schema.Struct({ code: Schema.String })
const ReadFileArgs = Schema.Struct({ path: Schema.String })

interface TestTool {
  readonly policy: "ask" | "auto"
  readonly validate: (args: unknown) => Either.Either<JsonObject, string>
}

const toolOf = <A, I extends JsonObject>(schema: Schema.Schema<A, I>, policy: "ask" | "auto"): TestTool => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })
  const encode = Schema.encodeEither(schema)
  return {
    policy,
    validate: (args) =>
      decode(args).pipe(
        Either.flatMap(encode),
        Either.mapBoth({ onLeft: (e) => ParseResult.TreeFormatter.formatErrorSync(e), onRight: (a): JsonObject => a })
      )
  }
}

export const testTools: ReadonlyMap<string, TestTool> = new Map([
  ["eval", toolOf(EvalArgs, "ask")],
  ["read_file", toolOf(ReadFileArgs, "auto")]
])

export const checkTool = (tool: string, args: unknown): ToolCheck => {
  const t = testTools.get(tool)
  if (t === undefined) return { ok: false, error: `unknown tool ${JSON.stringify(tool)}; known tools: ${[...testTools.keys()].join(", ")}` }
  return Either.match(t.validate(args), {
    onLeft: (error) => ({ ok: false, error: `invalid args for ${tool}: ${error}` }),
    onRight: (canonical) => ({ ok: true, args: canonical, policy: t.policy })
  })
}

/** The context every test's `decide` and writer use. */
export const testContext: DecideContext = { model: MODEL, checkTool }

// ---- the writer's layers over a fresh in-memory store (each `Effect.provide` builds a new, empty one) ----

/** SessionWriter + Bus + EventStore (memory) + WriterContext `ctx`, all sharing one store. */
export const writerLayerWith = (ctx: DecideContext) =>
  writerLayer.pipe(Layer.provideMerge(busLayer), Layer.provideMerge(Layer.merge(layerMemory, Layer.succeed(WriterContext, ctx))))

/** SessionWriter + Bus + EventStore (memory) + the tests' WriterContext, all sharing one store. */
export const writerTestLayer = writerLayerWith(testContext)

/** The server's settings for `env` (as the process would read them), for tests that build the server in-process. */
export const serverConfigFor = (env: Record<string, string>): ServerConfig =>
  serverConfigOf(Effect.runSync(Effect.withConfigProvider(appConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))), () => "unused")
