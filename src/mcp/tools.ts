/**
 * Pure translation between an MCP server's own words and ours: a `tools/list` answer becomes catalogue entries
 * (`mcp__<server>__<tool>`, capped description, guarded schema, validator), a `tools/call` answer becomes a bounded
 * result. Nothing here does I/O; whatever the server sent, the answer is bounded and nothing throws.
 */
import { Either, Schema } from "effect"
import type { JsonObject } from "../domain/Event.ts"
import type { McpPolicy, McpServerConfig } from "./config.ts"
import { type ArgsValidator, isJsonObject, jsonProblem, makeSchemaCompiler } from "./jsonSchema.ts"
import type { McpLimits } from "./limits.ts"

/** An MCP tool as the catalogue holds it. */
export interface McpTool {
  /** `mcp__<server>__<tool>`: what the model calls. */
  readonly name: string
  /** The server's name (the key in `mcpServers`). */
  readonly server: string
  /** The tool's own name on its server. */
  readonly tool: string
  /** The server's description, control characters removed, length-capped. */
  readonly description: string
  /** The server's JSON Schema of the args (within McpLimits.schema). */
  readonly inputSchema: JsonObject
  /** The server's approval policy. */
  readonly policy: McpPolicy
  /** Checks args against `inputSchema`: the args as they are, or a readable error. Pure, synchronous, never throws. */
  readonly validate: ArgsValidator
}

/** A tool the server offered that is not in the catalogue, and why. */
export interface SkippedTool {
  readonly tool: string
  readonly reason: string
}

/** What one listing yields. */
export interface ToolListing {
  readonly tools: ReadonlyArray<McpTool>
  /** The first few skipped tools (a hostile server may offer thousands). */
  readonly skipped: ReadonlyArray<SkippedTool>
  /** How many were skipped in all. */
  readonly skippedCount: number
}

/** Longest tool name the providers accept (OpenAI and Anthropic: `^[a-zA-Z0-9_-]{1,64}$`). */
export const maxToolNameChars = 64
const safeToolName = /^[A-Za-z0-9_-]+$/
const maxSkippedShown = 20

/** The catalogue name of a server's tool. */
export const mcpToolName = (server: string, tool: string): string => `mcp__${server}__${tool}`

/** Untrusted text for the prompt and the UI: no control characters but newline and tab, at most `max` characters. */
export const cleanText = (text: string, max: number): string => {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, "")
  return clean.length > max ? `${clean.slice(0, Math.max(0, max - 1))}…` : clean
}

const ListedTool = Schema.Struct({
  name: Schema.String,
  description: Schema.optional(Schema.String),
  inputSchema: Schema.Unknown
})
const decodeListedTool = Schema.decodeUnknownEither(ListedTool)

/** Turns the tools a server listed into catalogue entries; at most `limits.maxTools`, each checked. */
export const toolsFromListing = (config: McpServerConfig, listed: ReadonlyArray<unknown>, limits: McpLimits): ToolListing => {
  const compiler = makeSchemaCompiler(limits.schema)
  const allowed = config.tools === undefined ? undefined : new Set(config.tools)
  const tools: Array<McpTool> = []
  const seen = new Set<string>()
  const skipped: Array<SkippedTool> = []
  let skippedCount = 0
  const skip = (tool: string, reason: string) => {
    skippedCount++
    if (skipped.length < maxSkippedShown) skipped.push({ tool: cleanText(tool, 80), reason })
  }
  for (const raw of listed) {
    const decoded = decodeListedTool(raw)
    if (Either.isLeft(decoded)) {
      skip(isJsonObject(raw) && typeof raw.name === "string" ? raw.name : "(unnamed)", "not a tool (needs a name and an inputSchema)")
      continue
    }
    const { name: tool, description, inputSchema } = decoded.right
    const name = mcpToolName(config.name, tool)
    if (allowed !== undefined && !allowed.has(tool)) {
      skip(tool, "not in the server's tools allow-list")
      continue
    }
    if (!safeToolName.test(tool)) {
      skip(tool, "its name has characters other than letters, digits, _ and -")
      continue
    }
    if (name.length > maxToolNameChars) {
      skip(tool, `${name} is longer than ${maxToolNameChars} characters`)
      continue
    }
    if (seen.has(tool)) {
      skip(tool, "listed twice")
      continue
    }
    if (tools.length >= limits.maxTools) {
      skip(tool, `the server offers more than ${limits.maxTools} tools`)
      continue
    }
    if (!isJsonObject(inputSchema)) {
      skip(tool, "its inputSchema is not a JSON object")
      continue
    }
    const validate = compiler.compile(inputSchema)
    if (Either.isLeft(validate)) {
      skip(tool, validate.left)
      continue
    }
    seen.add(tool)
    tools.push({
      name,
      server: config.name,
      tool,
      description: cleanText(description ?? "", limits.maxDescriptionChars),
      inputSchema,
      policy: config.policy,
      validate: validate.right
    })
  }
  return { tools, skipped, skippedCount }
}

/** A tool's answer as the runner records it. `isError` is the server saying the tool failed: data, not a defect. */
export interface McpCallResult {
  /** The text of the result's content blocks (non-text blocks described in brackets), capped. */
  readonly text: string
  /** The result's structured content, when it is a JSON object within the cap. */
  readonly structured?: JsonObject
  /** The tool reported an error (`isError: true`). */
  readonly isError: boolean
  /** Text was cut, or structured content dropped, by the caps. */
  readonly truncated: boolean
}

const str = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)

// One content block as text for the model; binary data is described, never inlined.
const blockText = (block: unknown): string => {
  if (!isJsonObject(block)) return "[unreadable content]"
  const type = str(block.type) ?? "unknown"
  switch (type) {
    case "text":
      return str(block.text) ?? ""
    case "image":
    case "audio": {
      const data = str(block.data) ?? ""
      return `[${type} ${cleanText(str(block.mimeType) ?? "", 100)}, about ${Math.floor((data.length * 3) / 4)} bytes]`
    }
    case "resource_link":
      return `[resource link ${cleanText(str(block.uri) ?? "", 500)}${block.name === undefined ? "" : ` (${cleanText(str(block.name) ?? "", 200)})`}]`
    case "resource": {
      const resource = isJsonObject(block.resource) ? block.resource : {}
      const uri = cleanText(str(resource.uri) ?? "", 500)
      const text = str(resource.text)
      if (text !== undefined) return `[resource ${uri}]\n${text}`
      return `[resource ${uri}, ${cleanText(str(resource.mimeType) ?? "binary", 100)}, about ${Math.floor(((str(resource.blob) ?? "").length * 3) / 4)} bytes]`
    }
    default:
      return `[${cleanText(type, 40)} content]`
  }
}

/** Bounds a `tools/call` answer (already known to be a JSON object) into a result. */
export const callResultOf = (answer: JsonObject, limits: McpLimits): McpCallResult => {
  let text = ""
  let truncated = false
  const content = Array.isArray(answer.content) ? answer.content : []
  for (const block of content) {
    const part = blockText(block)
    const joined = text === "" ? part : `${text}\n${part}`
    if (joined.length > limits.maxOutputChars) {
      text = joined.slice(0, limits.maxOutputChars)
      truncated = true
      break
    }
    text = joined
  }
  const raw = answer.structuredContent
  let structured: JsonObject | undefined
  if (raw !== undefined) {
    if (isJsonObject(raw) && jsonProblem(raw, { maxDepth: limits.schema.maxDepth, maxChars: limits.maxStructuredChars }) === undefined)
      structured = raw
    else truncated = true
  }
  // A server that answers only with structured content still gives the model something to read.
  if (text === "" && structured !== undefined) {
    const json = JSON.stringify(structured)
    text = json.slice(0, limits.maxOutputChars)
    truncated = truncated || json.length > limits.maxOutputChars
  }
  return { text, ...(structured === undefined ? {} : { structured }), isError: answer.isError === true, truncated }
}
