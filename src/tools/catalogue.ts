/**
 * The tool catalogue: the four tools of DESIGN.md §7 built from config, their effective approval policies,
 * a pure synchronous `check` for the session writer, `specs` for the prompt, and `run`.
 */
import { Context, Effect, Either, Layer } from "effect"
import { AppConfig } from "../config/AppConfig.ts"
import type { JsonObject } from "../domain/Event.ts"
import { type EvalLimits, makeEvalTool } from "./eval.ts"
import { type FileLimits, makeListFilesTool, makeReadFileTool } from "./files.ts"
import { type HttpLimits, makeHttpGetTool } from "./httpGet.ts"
import { isToolName, type ToolName } from "./policies.ts"
import { type AnyTool, type ApprovalPolicy, eraseTool, ToolError, type ToolOutput } from "./Tool.ts"

export { parsePolicies, type ToolName, toolNames } from "./policies.ts"

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
  /** The args' JSON Schema (what the model is offered). */
  readonly parameters: { readonly [key: string]: unknown }
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
      tools.map((tool) => ({ name: tool.name, description: tool.description, argsDoc: tool.argsDoc, parameters: tool.parameters, policy: policyOf(tool) })),
    run: (name, args) => {
      const tool = byName.get(name)
      if (tool === undefined) return Effect.fail(new ToolError({ message: unknown(name) }))
      return tool.run(args).pipe(Effect.withSpan("ToolCatalogue.run", { attributes: { tool: name } }))
    }
  }
}

/** The catalogue as a service. */
export class ToolCatalogue extends Context.Tag("tape/ToolCatalogue")<ToolCatalogue, Catalogue>() {
  /** Built from the process configuration (TAPE_WORKSPACE, TAPE_HTTP_ALLOW, TAPE_TOOL_POLICY). */
  static readonly layer = Layer.effect(ToolCatalogue, Effect.map(AppConfig, (config) => makeCatalogue(config.tools)))
  /** Built from an explicit config (tests, embedding). */
  static readonly layerWith = (config: CatalogueConfig, limits?: CatalogueLimits) =>
    Layer.succeed(ToolCatalogue, makeCatalogue(config, limits))
}
