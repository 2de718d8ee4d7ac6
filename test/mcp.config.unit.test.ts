// MCP server entries and the plain MCP JSON file: the shapes other MCP clients use, our policy / tools / timeoutMs,
// and errors that name the file, the key and what is wrong.
import { afterAll, describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Either } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { decodeMcpServers, type McpConfigError, loadMcpConfigFile, mcpServersFromEnv } from "../src/mcp/config.ts"

const dir = mkdtempSync(join(tmpdir(), "tape-mcp-config-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const file = (name: string, text: string) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const problem = (input: unknown): McpConfigError => {
  const decoded = decodeMcpServers(input, "agent-tape.config.ts")
  if (Either.isRight(decoded)) throw new Error("expected an error")
  return decoded.left
}

describe("MCP server entries", () => {
  test("stdio and Streamable HTTP entries as other clients write them, with our defaults", () => {
    const decoded = decodeMcpServers(
      {
        fs: { command: "npx", args: ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], env: { DEBUG: "1" } },
        docs: { type: "http", url: "https://example.com/mcp", headers: { Authorization: "Bearer x" }, policy: "auto", tools: ["search"], timeoutMs: 5000 },
        off: { command: "never", disabled: true }
      },
      "mcp.json"
    )
    expect(decoded).toEqual(
      Either.right([
        { transport: "stdio", name: "fs", policy: "ask", command: "npx", args: ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], env: { DEBUG: "1" } },
        { transport: "http", name: "docs", policy: "auto", tools: ["search"], timeoutMs: 5000, url: "https://example.com/mcp", headers: { Authorization: "Bearer x" } }
      ])
    )
  })

  test("an unknown key is named with its path", () => {
    const error = problem({ fs: { command: "x", arg: ["a"] } })
    expect(error.message).toContain("agent-tape.config.ts: mcpServers.fs.arg: ")
    expect(error.message).toContain("unexpected")
  })

  test("wrong types, a bad policy, a bad URL and a bad timeout are each named", () => {
    const error = problem({
      a: { command: "x", args: ["ok", 3] },
      b: { url: "ftp://example.com" },
      c: { command: "x", policy: "always" },
      d: { url: "http://localhost:1/mcp", timeoutMs: -1 }
    })
    const keys = error.issues.map((issue) => issue.key)
    expect(keys).toEqual(["mcpServers.a.args.1", "mcpServers.b.url", "mcpServers.c.policy", "mcpServers.d.timeoutMs"])
    expect(error.message).toContain(`mcpServers.c.policy: must be "ask" or "auto"`)
    expect(error.message).toContain("mcpServers.b.url: must be an http:// or https:// URL")
  })

  test("an entry without command or url, with both, or the SSE transport, says so", () => {
    expect(problem({ a: { args: [] } }).message).toContain("mcpServers.a: needs command (stdio) or url (Streamable HTTP)")
    expect(problem({ a: { command: "x", url: "http://h/" } }).message).toContain("has both command and url")
    expect(problem({ a: { type: "sse", url: "http://h/" } }).message).toContain("the older SSE transport is not supported")
  })

  test("server names must be safe inside mcp__<server>__<tool>", () => {
    expect(problem({ "my server": { command: "x" } }).issues[0]?.key).toBe("mcpServers.my server")
    expect(problem({ a__b: { command: "x" } }).message).toContain("without __")
    expect(problem({ ["s".repeat(33)]: { command: "x" } }).message).toContain("1-32 letters")
  })
})

describe("a plain MCP JSON file (TAPE_MCP_CONFIG)", () => {
  const load = (path: string) => Effect.runPromise(Effect.either(loadMcpConfigFile(path)))

  test("an existing client file works as is; its other keys are ignored", async () => {
    const path = file("claude.json", JSON.stringify({ globalShortcut: "x", mcpServers: { everything: { command: "npx", args: ["-y", "x"] } } }))
    expect(await load(path)).toEqual(Either.right([{ transport: "stdio", name: "everything", policy: "ask", command: "npx", args: ["-y", "x"] }]))
  })

  test("errors name the file: missing, not JSON, no mcpServers, a bad entry", async () => {
    const messages = await Promise.all(
      [
        join(dir, "missing.json"),
        file("broken.json", "{ mcpServers: "),
        file("empty.json", "{}"),
        file("bad.json", JSON.stringify({ mcpServers: { fs: { command: 7 } } }))
      ].map(async (path) => {
        const loaded = await load(path)
        return Either.isLeft(loaded) ? loaded.left.message : "loaded"
      })
    )
    expect(messages[0]).toContain(`${join(dir, "missing.json")}: (file): cannot be read`)
    expect(messages[1]).toContain(`${join(dir, "broken.json")}: (file): is not valid JSON`)
    expect(messages[2]).toBe(`${join(dir, "empty.json")}: mcpServers: is missing`)
    expect(messages[3]).toContain(`${join(dir, "bad.json")}: mcpServers.fs.command:`)
  })

  test("TAPE_MCP_CONFIG names the file; unset means no servers", async () => {
    const path = file("env.json", JSON.stringify({ mcpServers: { web: { url: "http://127.0.0.1:9/mcp" } } }))
    const withEnv = (env: Record<string, string>) =>
      Effect.runPromise(mcpServersFromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))
    expect(await withEnv({ TAPE_MCP_CONFIG: path })).toEqual([{ transport: "http", name: "web", policy: "ask", url: "http://127.0.0.1:9/mcp" }])
    expect(await withEnv({})).toEqual([])
  })
})
