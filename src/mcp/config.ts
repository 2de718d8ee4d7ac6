/**
 * MCP server entries as MCP clients write them (stdio `command` or Streamable HTTP `url`) plus our `policy`, `tools`
 * and `timeoutMs`; and the loader of a plain MCP JSON file. Decoding only: nothing here starts a server.
 */
import { Config, type ConfigError, Data, Effect, Either, ParseResult, Schema } from "effect"
import { readFile, stat } from "node:fs/promises"

/** `ask`: a user approves each call; `auto`: approved by policy. */
export type McpPolicy = "ask" | "auto"

/** What every server entry has, whatever its transport. */
interface McpServerCommon {
  /** The key in `mcpServers`; the middle of `mcp__<server>__<tool>`. */
  readonly name: string
  /** Approval policy of all of this server's tools (default `ask`). */
  readonly policy: McpPolicy
  /** Only these tools (the server's own names) are offered; absent: all of them. */
  readonly tools?: ReadonlyArray<string>
  /** Time limit of one call, in ms; absent: the default of McpLimits. */
  readonly timeoutMs?: number
}

/** A server started as a child process, spoken to over its stdin/stdout. */
export interface McpStdioServer extends McpServerCommon {
  readonly transport: "stdio"
  readonly command: string
  readonly args: ReadonlyArray<string>
  /** Added to a minimal inherited environment (HOME, PATH, …): our own secrets are not passed on. */
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
}

/** A server reached over MCP's Streamable HTTP transport. */
export interface McpHttpServer extends McpServerCommon {
  readonly transport: "http"
  readonly url: string
  /** Sent with every request (e.g. Authorization); never shown in states or logs. */
  readonly headers?: Readonly<Record<string, string>>
}

/** One configured MCP server. */
export type McpServerConfig = McpStdioServer | McpHttpServer

/** A config that cannot be used: `message` names the file, the key and what is wrong. */
export class McpConfigError extends Data.TaggedError("McpConfigError")<{
  /** The file (or config source) that holds the entry. */
  readonly file: string
  /** Each problem: the key path (`mcpServers.fs.args[1]`) and what is wrong with it. */
  readonly issues: ReadonlyArray<{ readonly key: string; readonly problem: string }>
}> {
  override get message(): string {
    const shown = this.issues.slice(0, 10).map((issue) => `${this.file}: ${issue.key}: ${issue.problem}`)
    const more = this.issues.length > shown.length ? [`${this.file}: … and ${this.issues.length - shown.length} more`] : []
    return [...shown, ...more].join("\n")
  }
}

/** Server names: what is safe inside a tool name, without `__` so `mcp__<server>__<tool>` stays unambiguous. */
export const serverNamePattern = /^[A-Za-z0-9_-]{1,32}$/

// Exact optionals: JSON has no undefined, and a union with it would hide the messages below.
const exact = { exact: true } as const
// `override`: a union's own message, not its members'.
const Policy = Schema.Literal("ask", "auto").annotations({ message: () => ({ message: `must be "ask" or "auto"`, override: true }) })
const StringMap = Schema.Record({ key: Schema.String, value: Schema.String })
const common = {
  policy: Schema.optionalWith(Policy, exact),
  tools: Schema.optionalWith(Schema.Array(Schema.String), exact),
  timeoutMs: Schema.optionalWith(
    Schema.Int.pipe(Schema.between(1, 86_400_000)).annotations({
      message: () => "must be a whole number of milliseconds between 1 and 86400000"
    })
  , exact),
  // Other MCP clients' files carry these; `disabled: true` drops the entry.
  disabled: Schema.optionalWith(Schema.Boolean, exact)
}

const StdioEntry = Schema.Struct({
  type: Schema.optionalWith(Schema.Literal("stdio"), exact),
  command: Schema.String.pipe(Schema.minLength(1)).annotations({ message: () => "must be a non-empty string" }),
  args: Schema.optionalWith(Schema.Array(Schema.String), exact),
  env: Schema.optionalWith(StringMap, exact),
  cwd: Schema.optionalWith(Schema.String, exact),
  ...common
})

const HttpUrl = Schema.String.pipe(
  Schema.filter((url) => URL.canParse(url) && ["http:", "https:"].includes(new URL(url).protocol), {
    message: () => "must be an http:// or https:// URL"
  })
)

const HttpEntry = Schema.Struct({
  type: Schema.optionalWith(
    Schema.Literal("http", "streamable-http", "streamableHttp").annotations({
      message: () => ({ message: `must be "http" (Streamable HTTP); the older SSE transport is not supported`, override: true })
    })
  , exact),
  url: HttpUrl,
  headers: Schema.optionalWith(StringMap, exact),
  ...common
})

// One problem per key: a union reports each of its members, the first says enough.
const issuesOf = (error: ParseResult.ParseError, prefix: string) => {
  const byKey = new Map<string, string>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const key = [prefix, ...issue.path.map(String)].join(".")
    if (!byKey.has(key)) byKey.set(key, issue.message)
  }
  return [...byKey].map(([key, problem]) => ({ key, problem }))
}

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> => typeof u === "object" && u !== null && !Array.isArray(u)

/** One entry; `undefined` when it is disabled. */
const decodeEntry = (
  name: string,
  raw: unknown,
  key: string
): Either.Either<McpServerConfig | undefined, ReadonlyArray<{ key: string; problem: string }>> => {
  if (!serverNamePattern.test(name) || name.includes("__"))
    return Either.left([{ key, problem: "a server name is 1-32 letters, digits, _ or -, without __" }])
  if (!isRecord(raw)) return Either.left([{ key, problem: "must be an object with command (stdio) or url (Streamable HTTP)" }])
  const hasCommand = "command" in raw
  const hasUrl = "url" in raw
  if (hasCommand === hasUrl)
    return Either.left([
      { key, problem: hasCommand ? "has both command and url; give one" : "needs command (stdio) or url (Streamable HTTP)" }
    ])
  const options = { errors: "all", onExcessProperty: "error" } as const
  const common = (entry: Schema.Schema.Type<typeof StdioEntry> | Schema.Schema.Type<typeof HttpEntry>) => ({
    name,
    policy: entry.policy ?? "ask",
    ...(entry.tools === undefined ? {} : { tools: entry.tools }),
    ...(entry.timeoutMs === undefined ? {} : { timeoutMs: entry.timeoutMs })
  })
  const decoded: Either.Either<McpServerConfig | undefined, ParseResult.ParseError> = hasCommand
    ? Either.map(Schema.decodeUnknownEither(StdioEntry, options)(raw), (entry) =>
        entry.disabled === true
          ? undefined
          : {
              transport: "stdio",
              ...common(entry),
              command: entry.command,
              args: entry.args ?? [],
              ...(entry.env === undefined ? {} : { env: entry.env }),
              ...(entry.cwd === undefined ? {} : { cwd: entry.cwd })
            }
      )
    : Either.map(Schema.decodeUnknownEither(HttpEntry, options)(raw), (entry) =>
        entry.disabled === true
          ? undefined
          : {
              transport: "http",
              ...common(entry),
              url: entry.url,
              ...(entry.headers === undefined ? {} : { headers: entry.headers })
            }
      )
  return Either.mapLeft(decoded, (error) => issuesOf(error, key))
}

/**
 * Decodes an `mcpServers` object (`{ "<name>": entry }`) found in `file` under `key` (default `mcpServers`).
 * Every problem of every entry is reported, each with its key path. Disabled entries are left out.
 */
export const decodeMcpServers = (
  input: unknown,
  file: string,
  key = "mcpServers"
): Either.Either<ReadonlyArray<McpServerConfig>, McpConfigError> => {
  if (!isRecord(input))
    return Either.left(new McpConfigError({ file, issues: [{ key, problem: "must be an object of named servers" }] }))
  const servers: Array<McpServerConfig> = []
  const issues: Array<{ key: string; problem: string }> = []
  for (const [name, raw] of Object.entries(input)) {
    const decoded = decodeEntry(name, raw, `${key}.${name}`)
    if (Either.isLeft(decoded)) issues.push(...decoded.left)
    else if (decoded.right !== undefined) servers.push(decoded.right)
  }
  return issues.length > 0 ? Either.left(new McpConfigError({ file, issues })) : Either.right(servers)
}

/** A plain MCP file bigger than this is refused (it is a config, not data). */
const maxConfigBytes = 1024 * 1024

/**
 * Reads a plain MCP client file (`{"mcpServers": {...}}`, the file other MCP clients use; other top-level keys are
 * ignored so such a file works as is). Errors name the file, the key and what is wrong.
 */
export const loadMcpConfigFile = Effect.fn("McpConfig.loadFile")(function* (path: string) {
  const fail = (key: string, problem: string) => Effect.fail(new McpConfigError({ file: path, issues: [{ key, problem }] }))
  const text = yield* Effect.tryPromise({
    try: async () => {
      const info = await stat(path)
      if (!info.isFile()) throw new Error("is not a file")
      if (info.size > maxConfigBytes) throw new Error(`is ${info.size} bytes; a config file may have ${maxConfigBytes}`)
      return await readFile(path, "utf8")
    },
    catch: (error) => (error instanceof Error ? error.message : String(error))
  }).pipe(Effect.catchAll((problem) => fail("(file)", `cannot be read: ${problem}`)))
  const parsed = Either.try({ try: (): unknown => JSON.parse(text), catch: (error) => (error instanceof Error ? error.message : String(error)) })
  if (Either.isLeft(parsed)) return yield* fail("(file)", `is not valid JSON: ${parsed.left}`)
  if (!isRecord(parsed.right)) return yield* fail("(file)", `must be a JSON object with "mcpServers"`)
  if (!("mcpServers" in parsed.right)) return yield* fail("mcpServers", "is missing")
  return yield* decodeMcpServers(parsed.right.mcpServers, path)
})

/** The servers of the file named by TAPE_MCP_CONFIG; none when it is not set. */
export const mcpServersFromEnv: Effect.Effect<ReadonlyArray<McpServerConfig>, McpConfigError | ConfigError.ConfigError> =
  Effect.flatMap(Config.option(Config.nonEmptyString("TAPE_MCP_CONFIG")), (path) =>
    path._tag === "Some" ? loadMcpConfigFile(path.value) : Effect.succeed([])
  )
