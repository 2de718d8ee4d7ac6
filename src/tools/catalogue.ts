/**
 * The tool catalogue: the built-in tools (DESIGN.md §7) as the environment and the config file set them, the user's
 * own tools, and the tools of the MCP servers (live: `tools/list_changed` refreshes them). It answers the writer's
 * pure synchronous `check`, the model's `specs` (only tools that can work now), the `/api/tools` listing, and `run`.
 */
import { mkdirSync } from "node:fs"
import { resolve } from "node:path"
import { Context, Effect, Either, Layer } from "effect"
import { AppConfig } from "../config/AppConfig.ts"
import { type BuiltinSettings, emptyConfig, type LoadedConfig, UserConfig } from "../config/file.ts"
import type { JsonObject } from "../domain/Event.ts"
import { McpClients, type McpClientsShape } from "../mcp/McpClients.ts"
import type { McpServerStatus } from "../mcp/McpClients.ts"
import type { McpTool } from "../mcp/tools.ts"
import { type EvalLimits, makeEvalTool } from "./eval.ts"
import { type FileLimits, makeListFilesTool, makeReadFileTool } from "./files.ts"
import { type HttpLimits, makeHttpGetTool } from "./httpGet.ts"
import type { ToolName } from "./policies.ts"
import { type AnyTool, type ApprovalPolicy, type CallContext, eraseTool, ToolError, type ToolOutput, type ToolSource } from "./Tool.ts"
import { fromUserTool } from "./userTool.ts"

export { parsePolicies, type ToolName, toolNames } from "./policies.ts"

/** What the built-in tools are built from (the environment's settings; the config file's `builtins` win over them). */
export interface CatalogueConfig {
  /** Folder `read_file` / `list_files` may read (resolved against the current directory). */
  readonly workspace: string
  /** Hosts `http_get` may reach; empty allows none (then it is not offered). */
  readonly httpAllow: ReadonlyArray<string>
  /** Overrides of the default policies (`eval`, `http_get`: ask; file tools: auto). */
  readonly policies?: Partial<Record<ToolName, ApprovalPolicy>>
}

/** Limits of each built-in tool, for tests and tuning; defaults otherwise. */
export interface CatalogueLimits {
  readonly eval?: Partial<EvalLimits>
  readonly files?: Partial<FileLimits>
  readonly http?: Partial<HttpLimits>
}

/** A tool as the model is offered it. */
export interface ToolSpec {
  readonly name: string
  /** One line: what the tool does. */
  readonly description: string
  /** The args' JSON Schema (what the model is offered). */
  readonly parameters: { readonly [key: string]: unknown }
  /** Its approval policy: fixed, or chosen per call from the args by the tool's own function. */
  readonly policy: ApprovalPolicy | "depends"
}

/** A tool as `GET /api/tools` lists it: offered to the model or not, and why not. */
export interface ToolListing extends ToolSpec {
  readonly source: ToolSource
  /** False when the tool cannot work with the current settings (it is not offered to the model). */
  readonly offered: boolean
  /** Why it is not offered. */
  readonly reason?: string
}

/** The verdict on a tool call: canonical args and policy (→ ToolCallRequested) or an error (→ ToolCallInvalid). */
export type CheckResult =
  | { readonly ok: true; readonly args: JsonObject; readonly policy: ApprovalPolicy }
  | { readonly ok: false; readonly error: string }

/** The tools available to a session. */
export interface Catalogue {
  /** Validates a call: unknown tool → error naming the known ones; bad args → a bounded error. Pure, synchronous. */
  readonly check: (tool: string, args: unknown) => CheckResult
  /** The tools offered to the model now, in order: built-in, config, MCP. */
  readonly specs: () => Array<ToolSpec>
  /** Every tool, offered or not (with the reason), and the MCP servers' states. */
  readonly list: () => { readonly tools: ReadonlyArray<ToolListing>; readonly servers: ReadonlyArray<McpServerStatus> }
  /** Runs a call (args are validated again); interruption stops the work. */
  readonly run: (tool: string, args: unknown, context: CallContext) => Effect.Effect<ToolOutput, ToolError>
}

interface Entry {
  readonly tool: AnyTool
  /** Why it cannot be offered, or null. */
  readonly reason: string | null
}

/** The settings of one built-in: `false` (off), or what the config sets. */
const settingsOf = (builtins: LoadedConfig["builtins"], name: ToolName): false | BuiltinSettings => builtins[name] ?? {}

/** The four built-in tools, with the environment's settings and the config file's `builtins` over them. */
const builtinEntries = (config: CatalogueConfig, limits: CatalogueLimits, builtins: LoadedConfig["builtins"]): Array<Entry> => {
  const out: Array<Entry> = []
  const add = (name: ToolName, make: (s: BuiltinSettings) => AnyTool, unavailable: (s: BuiltinSettings) => string | null) => {
    const s = settingsOf(builtins, name)
    if (s === false) return
    out.push({ tool: make(s), reason: unavailable(s) })
  }
  const policy = (name: ToolName, s: BuiltinSettings) => s.policy ?? config.policies?.[name]
  const workspace = (s: BuiltinSettings) => resolve(s.workspace ?? config.workspace)
  const workspaceReason = (s: BuiltinSettings) => {
    try {
      // Out of the box the tools work: the workspace folder is made on first start.
      mkdirSync(workspace(s), { recursive: true })
      return null
    } catch (e) {
      return `the workspace folder ${workspace(s)} cannot be made (${e instanceof Error ? e.message : String(e)}); set TAPE_WORKSPACE`
    }
  }
  add("eval", (s) => {
    const tool = makeEvalTool({ ...limits.eval, ...(s.timeoutMs ? { timeLimitMs: s.timeoutMs } : {}), ...(s.maxOutput ? { outputLimitChars: s.maxOutput } : {}) })
    return eraseTool(tool, policy("eval", s) ?? tool.policy)
  }, () => null)
  add("read_file", (s) => {
    const tool = makeReadFileTool(workspace(s), { ...limits.files, ...(s.maxOutput ? { maxReadBytes: s.maxOutput } : {}) })
    return eraseTool(tool, policy("read_file", s) ?? tool.policy)
  }, workspaceReason)
  add("list_files", (s) => {
    const tool = makeListFilesTool(workspace(s), limits.files)
    return eraseTool(tool, policy("list_files", s) ?? tool.policy)
  }, workspaceReason)
  add("http_get", (s) => {
    const tool = makeHttpGetTool(s.allow ?? config.httpAllow, {
      ...limits.http,
      ...(s.timeoutMs ? { timeout: s.timeoutMs } : {}),
      ...(s.maxOutput ? { maxBodyBytes: s.maxOutput } : {})
    })
    return eraseTool(tool, policy("http_get", s) ?? tool.policy)
  }, (s) => ((s.allow ?? config.httpAllow).length === 0 ? "no host is allowed: set TAPE_HTTP_ALLOW (or builtins.http_get.allow in the config)" : null))
  return out
}

/** An MCP server's tool as a catalogue tool: checked by its own schema, run on its server. */
const fromMcpTool = (t: McpTool, mcp: McpClientsShape): AnyTool => ({
  name: t.name,
  description: t.description,
  parameters: t.inputSchema,
  source: `mcp:${t.server}`,
  policy: () => t.policy,
  policyShown: t.policy,
  validate: t.validate,
  run: (args) =>
    mcp.call(t.name, args).pipe(
      Effect.mapError((e) => new ToolError({ message: e.message, mayHaveRun: e.mayHaveRun, cause: e })),
      Effect.flatMap((result) =>
        result.isError ? Effect.fail(new ToolError({ message: result.text || "the tool reported an error" })) : Effect.succeed({ output: result.text, truncated: result.truncated })
      )
    )
})

const MAX_NAMES_SHOWN = 40

/** Builds the catalogue; pure apart from making the workspace folder and what the tools do when run. */
export const makeCatalogue = (
  config: CatalogueConfig,
  limits: CatalogueLimits = {},
  user: LoadedConfig = emptyConfig,
  mcp: McpClientsShape | undefined = undefined
): Catalogue => {
  const fixed: ReadonlyArray<Entry> = [
    ...builtinEntries(config, limits, user.builtins),
    ...user.tools.map(({ name, tool }) => ({ tool: fromUserTool(name, tool), reason: null }))
  ]
  const fixedByName = new Map(fixed.map((e) => [e.tool.name, e]))
  // The MCP tools change while the server runs: their entries are rebuilt only when the listing changes.
  let mcpSeen: ReadonlyArray<McpTool> | null = null
  let mcpEntries: ReadonlyArray<Entry> = []
  let mcpByName = new Map<string, Entry>()
  const mcpNow = () => {
    if (mcp === undefined) return mcpEntries
    const tools = mcp.current().tools
    if (tools !== mcpSeen) {
      mcpSeen = tools
      mcpEntries = tools.map((t) => ({ tool: fromMcpTool(t, mcp), reason: null }))
      mcpByName = new Map(mcpEntries.map((e) => [e.tool.name, e]))
    }
    return mcpEntries
  }
  const lookup = (name: string): Entry | undefined => {
    const hit = fixedByName.get(name)
    if (hit !== undefined) return hit
    mcpNow()
    return mcpByName.get(name)
  }
  const offered = () => [...fixed, ...mcpNow()].filter((e) => e.reason === null)
  const unknown = (tool: string) => {
    const names = offered().map((e) => e.tool.name)
    const shown = names.slice(0, MAX_NAMES_SHOWN).join(", ")
    return `unknown tool ${JSON.stringify(tool.slice(0, 100))}; known tools: ${shown}${names.length > MAX_NAMES_SHOWN ? `, … (${names.length} in all)` : ""}`
  }
  const specOf = (t: AnyTool): ToolSpec => ({ name: t.name, description: t.description, parameters: t.parameters, policy: t.policyShown })
  return {
    check: (name, args) => {
      const entry = lookup(name)
      if (entry === undefined) return { ok: false, error: unknown(name) }
      if (entry.reason !== null) return { ok: false, error: `${name} cannot be used now: ${entry.reason}` }
      return Either.match(entry.tool.validate(args), {
        onLeft: (error) => ({ ok: false, error: `invalid args for ${name}: ${error}` }),
        onRight: (canonical) => ({ ok: true, args: canonical, policy: entry.tool.policy(canonical) })
      })
    },
    specs: () => offered().map((e) => specOf(e.tool)),
    list: () => ({
      tools: [...fixed, ...mcpNow()].map((e) => ({ ...specOf(e.tool), source: e.tool.source, offered: e.reason === null, ...(e.reason === null ? {} : { reason: e.reason }) })),
      servers: mcp?.current().servers ?? []
    }),
    run: (name, args, context) => {
      const entry = lookup(name)
      if (entry === undefined) return Effect.fail(new ToolError({ message: unknown(name) }))
      return Either.match(entry.tool.validate(args), {
        onLeft: (error) => Effect.fail(new ToolError({ message: `invalid args for ${name}: ${error}` })),
        onRight: (canonical) => entry.tool.run(canonical, context)
      }).pipe(Effect.withSpan("ToolCatalogue.run", { attributes: { tool: name } }))
    }
  }
}

/** The catalogue as a service. */
export class ToolCatalogue extends Context.Tag("tape/ToolCatalogue")<ToolCatalogue, Catalogue>() {
  /** From the process configuration (TAPE_WORKSPACE, TAPE_HTTP_ALLOW, TAPE_TOOL_POLICY), the config file and MCP. */
  static readonly layer = Layer.effect(
    ToolCatalogue,
    Effect.gen(function* () {
      const app = yield* AppConfig
      const user = yield* UserConfig
      const mcp = yield* McpClients
      return makeCatalogue(app.tools, {}, user, mcp)
    })
  )
  /** Built from an explicit config (tests, embedding). */
  static readonly layerWith = (config: CatalogueConfig, limits?: CatalogueLimits, user?: LoadedConfig, mcp?: McpClientsShape) =>
    Layer.succeed(ToolCatalogue, makeCatalogue(config, limits, user, mcp))
}
