/**
 * The tool catalogue: the four tools of DESIGN.md §7 built from config, their effective approval policies,
 * a pure synchronous `check` for the session writer, `specs` for the prompt, and `run`.
 */
import { Config, ConfigError, Context, Effect, Either, Layer } from "effect"
import type { JsonObject } from "../domain/Event.ts"
import { type EvalLimits, makeEvalTool } from "./eval.ts"
import { type FileLimits, makeListFilesTool, makeReadFileTool } from "./files.ts"
import { type HttpLimits, makeHttpGetTool } from "./httpGet.ts"
import { type AnyTool, type ApprovalPolicy, eraseTool, ToolError, type ToolOutput } from "./Tool.ts"

/** The names of the tools, in prompt order. */
export const toolNames = ["eval", "read_file", "list_files", "http_get"] as const
/** One of `toolNames`. */
export type ToolName = (typeof toolNames)[number]

/** What the catalogue is built from. */
export interface CatalogueConfig {
  /** Folder `read_file` / `list_files` may read (resolved against the current directory). */
  readonly workspace: string
  /** Hosts `http_get` may reach; empty allows none. */
  readonly httpAllow: ReadonlyArray<string>
  /** Overrides of the default policies (`eval`, `http_get`: ask; file tools: auto). */
  readonly policies?: Partial<Record<ToolName, ApprovalPolicy>>
}

/** Limits of each tool, for tests and tuning; defaults otherwise. */
export interface CatalogueLimits {
  readonly eval?: Partial<EvalLimits>
  readonly files?: Partial<FileLimits>
  readonly http?: Partial<HttpLimits>
}

/** A tool as the model's system prompt and the UI describe it. */
export interface ToolSpec {
  readonly name: string
  /** One line: what the tool does. */
  readonly description: string
  /** The args in a few words, e.g. `{ path: string — file path relative to the workspace folder }`. */
  readonly argsDoc: string
  /** Effective approval policy. */
  readonly policy: ApprovalPolicy
}

/** The verdict on a tool call: canonical args and policy (→ ToolCallRequested) or an error (→ ToolCallInvalid). */
export type CheckResult =
  | { readonly ok: true; readonly args: JsonObject; readonly policy: ApprovalPolicy }
  | { readonly ok: false; readonly error: string }

/** The tools available to a session. */
export interface Catalogue {
  /** Validates a call: unknown tool → error naming the known ones; bad args → Schema's formatted error. Pure, synchronous. */
  readonly check: (tool: string, args: unknown) => CheckResult
  /** Name, description, args and policy of every tool, for the system prompt. */
  readonly specs: () => Array<ToolSpec>
  /** Runs a tool (args are validated again); interruption stops the work. */
  readonly run: (tool: string, args: unknown) => Effect.Effect<ToolOutput, ToolError>
}

/** Builds the catalogue; pure apart from what the tools do when run. */
export const makeCatalogue = (config: CatalogueConfig, limits: CatalogueLimits = {}): Catalogue => {
  const tools: ReadonlyArray<AnyTool> = [
    eraseTool(makeEvalTool(limits.eval)),
    eraseTool(makeReadFileTool(config.workspace, limits.files)),
    eraseTool(makeListFilesTool(config.workspace, limits.files)),
    eraseTool(makeHttpGetTool(config.httpAllow, limits.http))
  ]
  const byName = new Map(tools.map((tool) => [tool.name, tool]))
  const policyOf = (tool: AnyTool): ApprovalPolicy =>
    (isToolName(tool.name) ? config.policies?.[tool.name] : undefined) ?? tool.policy
  const unknown = (tool: string) => `unknown tool ${JSON.stringify(tool)}; known tools: ${tools.map((t) => t.name).join(", ")}`
  return {
    check: (name, args) => {
      const tool = byName.get(name)
      if (tool === undefined) return { ok: false, error: unknown(name) }
      return Either.match(tool.validate(args), {
        onLeft: (error) => ({ ok: false, error: `invalid args for ${name}: ${error}` }),
        onRight: (canonical) => ({ ok: true, args: canonical, policy: policyOf(tool) })
      })
    },
    specs: () =>
      tools.map((tool) => ({ name: tool.name, description: tool.description, argsDoc: tool.argsDoc, policy: policyOf(tool) })),
    run: (name, args) => {
      const tool = byName.get(name)
      if (tool === undefined) return Effect.fail(new ToolError({ message: unknown(name) }))
      return tool.run(args).pipe(Effect.withSpan("ToolCatalogue.run", { attributes: { tool: name } }))
    }
  }
}

const isToolName = (name: string): name is ToolName => (toolNames as ReadonlyArray<string>).includes(name)

/** Parses `eval=auto,http_get=ask` (the TAPE_TOOL_POLICY format). */
export const parsePolicies = (text: string): Either.Either<Partial<Record<ToolName, ApprovalPolicy>>, string> => {
  const policies: Partial<Record<ToolName, ApprovalPolicy>> = {}
  for (const item of text.split(",").map((part) => part.trim()).filter((part) => part.length > 0)) {
    const [name = "", policy = "", ...rest] = item.split("=").map((part) => part.trim())
    if (rest.length > 0 || !isToolName(name) || (policy !== "ask" && policy !== "auto"))
      return Either.left(`bad entry ${JSON.stringify(item)}: expected <tool>=ask|auto with tool one of ${toolNames.join(", ")}`)
    policies[name] = policy
  }
  return Either.right(policies)
}

/** The catalogue config from TAPE_WORKSPACE (default ./workspace), TAPE_HTTP_ALLOW and TAPE_TOOL_POLICY. */
export const catalogueConfig: Config.Config<CatalogueConfig> = Config.all({
  workspace: Config.string("TAPE_WORKSPACE").pipe(Config.withDefault("./workspace")),
  httpAllow: Config.string("TAPE_HTTP_ALLOW").pipe(
    Config.withDefault(""),
    Config.map((text) => text.split(",").map((host) => host.trim()).filter((host) => host.length > 0))
  ),
  policies: Config.string("TAPE_TOOL_POLICY").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      Either.mapLeft(parsePolicies(text), (error) => ConfigError.InvalidData(["TAPE_TOOL_POLICY"], error))
    )
  )
})

/** The catalogue as a service. */
export class ToolCatalogue extends Context.Tag("tape/ToolCatalogue")<ToolCatalogue, Catalogue>() {
  /** Built from the environment (see `catalogueConfig`). */
  static readonly layer = Layer.effect(ToolCatalogue, Effect.map(catalogueConfig, (config) => makeCatalogue(config)))
  /** Built from an explicit config (tests, embedding). */
  static readonly layerWith = (config: CatalogueConfig, limits?: CatalogueLimits) =>
    Layer.succeed(ToolCatalogue, makeCatalogue(config, limits))
}
