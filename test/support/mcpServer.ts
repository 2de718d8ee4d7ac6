/**
 * Test support: a real MCP server built on the SDK's own low-level Server, with tools that misbehave on request
 * (sleep until cancelled, crash, huge output, list_changed floods, hostile tool lists). Run as a stdio process
 * (`bun test/support/mcpServer.ts [flags]`) or served over Streamable HTTP in the test's own process (`serveHttp`).
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type ListToolsResult,
  type Tool
} from "@modelcontextprotocol/sdk/types.js"
import { resolve } from "node:path"

/** The path of this file, to spawn it as a stdio server. */
export const serverScript = resolve(import.meta.dir, "mcpServer.ts")

/** How the server misbehaves. */
export interface TestServerOptions {
  /** Adds `count` generated tools `t0`, `t1`, … */
  readonly extraTools?: number
  /** Lists hostile tools too: unsafe names, bad schemas, huge descriptions, a ReDoS pattern. */
  readonly hostile?: boolean
  /** Exits right after answering the first tools/list (a server in a crash loop). */
  readonly exitAfterList?: boolean
  /** What `crash` does (stdio: the process exits). */
  readonly onCrash?: () => void
}

/** What the server saw, shared by every session of one test server. */
export interface TestServerState {
  listCalls: number
  started: number
  cancelled: number
  late: boolean
  readonly waiters: Set<() => void>
}

export const makeState = (): TestServerState => ({ listCalls: 0, started: 0, cancelled: 0, late: false, waiters: new Set() })

const changed = (state: TestServerState) => {
  for (const wake of [...state.waiters]) wake()
}

/** Resolves once `ok()` holds, re-checked whenever the server's state changes. */
const until = (state: TestServerState, ok: () => boolean) =>
  new Promise<void>((done) => {
    if (ok()) return done()
    const wake = () => {
      if (!ok()) return
      state.waiters.delete(wake)
      done()
    }
    state.waiters.add(wake)
  })

const object = (properties: Record<string, object>, required: ReadonlyArray<string> = []): Tool["inputSchema"] => ({
  type: "object",
  properties,
  required: [...required]
})

const baseTools: ReadonlyArray<Tool> = [
  { name: "echo", description: "Echoes the message", inputSchema: object({ message: { type: "string" } }, ["message"]) },
  { name: "sleep", description: "Waits ms milliseconds, or until cancelled", inputSchema: object({ ms: { type: "number" } }, ["ms"]) },
  { name: "await_started", description: "Answers once a sleep has started", inputSchema: object({}) },
  { name: "await_cancelled", description: "Answers once a sleep was cancelled", inputSchema: object({}) },
  { name: "hang", description: "Never answers", inputSchema: object({}) },
  { name: "crash", description: "The server dies mid-call", inputSchema: object({}) },
  { name: "big", description: "Answers chars characters", inputSchema: object({ chars: { type: "number" } }, ["chars"]) },
  { name: "fail", description: "Answers with isError", inputSchema: object({}) },
  { name: "weather", description: "Text and structured content", inputSchema: object({ city: { type: "string" } }, ["city"]) },
  { name: "flood", description: "Sends count tools/list_changed, then adds `late`", inputSchema: object({ count: { type: "number" } }, ["count"]) },
  { name: "trickle", description: "Sends tools/list_changed every ms for ms milliseconds, then adds `late`", inputSchema: object({ ms: { type: "number" } }, ["ms"]) },
  {
    name: "await_list",
    description: "Answers once tools/list was called count times, or after ms without that",
    inputSchema: object({ count: { type: "number" }, ms: { type: "number" } }, ["count", "ms"])
  },
  { name: "stats", description: "What the server saw, and the pid of the process that started it (stdio)", inputSchema: object({}) }
]

let deep: Record<string, unknown> = { type: "string" }
for (let i = 0; i < 200; i++) deep = { type: "object", properties: { x: deep } }

// Sent as the server's own JSON: tools/list answers are not checked by the SDK's server, as a hostile server's are not.
const hostileTools = (): Array<Tool> =>
  JSON.parse(
    JSON.stringify([
      { name: "bad name!", inputSchema: { type: "object" } },
      { name: "x".repeat(80), inputSchema: { type: "object" } },
      { name: "echo", description: "a second echo", inputSchema: { type: "object" } },
      { name: "nonsense_type", inputSchema: { type: "object", properties: { a: { type: "nonsense" } } } },
      { name: "deep", inputSchema: deep },
      { name: "huge_schema", inputSchema: { type: "object", properties: { a: { type: "string", description: "d".repeat(100_000) } } } },
      { name: "not_object", inputSchema: { type: "string" } },
      { name: "async_schema", inputSchema: { type: "object", $async: true } },
      { name: "missing_ref", inputSchema: { type: "object", properties: { a: { $ref: "#/definitions/nope" } } } },
      { name: "redos", inputSchema: object({ s: { type: "string", pattern: "^(a+)+$" } }, ["s"]) },
      { name: "slug", inputSchema: object({ s: { type: "string", pattern: "^[a-z]+$" } }, ["s"]) },
      { name: "wordy", description: `line one\u0000\u001b[31m${"w".repeat(10_000)}`, inputSchema: { type: "object" } },
      42,
      { name: 5 }
    ])
  )

const text = (value: string): CallToolResult => ({ content: [{ type: "text", text: value }] })

/** A server for one session (a stdio process has one; HTTP makes one per session). */
export const makeServer = (state: TestServerState, options: TestServerOptions = {}): Server => {
  const server = new Server({ name: "agent-tape-test-server", version: "1.0.0" }, { capabilities: { tools: { listChanged: true } } })
  server.setRequestHandler(ListToolsRequestSchema, (): ListToolsResult => {
    state.listCalls++
    changed(state)
    if (options.exitAfterList === true) setTimeout(() => process.exit(4), 0)
    const extra = Array.from({ length: options.extraTools ?? 0 }, (_, i): Tool => ({ name: `t${i}`, inputSchema: object({}) }))
    const late: Array<Tool> = state.late ? [{ name: "late", description: "Added by flood", inputSchema: object({}) }] : []
    return { tools: [...baseTools, ...late, ...extra, ...(options.hostile === true ? hostileTools() : [])] }
  })
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const args = request.params.arguments ?? {}
    switch (request.params.name) {
      case "echo":
        return text(`echo: ${String(args.message)}`)
      case "sleep": {
        state.started++
        changed(state)
        const aborted = await new Promise<boolean>((done) => {
          if (extra.signal.aborted) return done(true)
          const timer = setTimeout(() => done(false), Number(args.ms))
          extra.signal.addEventListener("abort", () => {
            clearTimeout(timer)
            done(true)
          })
        })
        if (aborted) {
          state.cancelled++
          changed(state)
        }
        return text(aborted ? "cancelled" : "slept")
      }
      case "await_started":
        await until(state, () => state.started > 0)
        return text(`started: ${state.started}`)
      case "await_cancelled":
        await until(state, () => state.cancelled > 0)
        return text(`cancelled: ${state.cancelled}`)
      case "hang":
        return new Promise<CallToolResult>(() => {})
      case "crash":
        ;(options.onCrash ?? (() => process.exit(3)))()
        return new Promise<CallToolResult>(() => {})
      case "big":
        return text("x".repeat(Number(args.chars)))
      case "fail":
        return { content: [{ type: "text", text: "it broke" }], isError: true }
      case "weather":
        return {
          content: [{ type: "text", text: `${String(args.city)}: 21 °C` }],
          structuredContent: { city: String(args.city), celsius: 21 }
        }
      case "flood": {
        for (let i = 0; i < Number(args.count); i++) void server.sendToolListChanged()
        state.late = true
        await server.sendToolListChanged()
        return text("flooded")
      }
      case "trickle": {
        const until = Date.now() + Number(args.ms)
        await new Promise<void>((done) => {
          const timer = setInterval(() => {
            void server.sendToolListChanged()
            if (Date.now() < until) return
            clearInterval(timer)
            done()
          }, 1)
        })
        state.late = true
        await server.sendToolListChanged()
        return text("trickled")
      }
      case "await_list": {
        const count = Number(args.count)
        const listed = await Promise.race([
          until(state, () => state.listCalls >= count).then(() => true),
          new Promise<boolean>((done) => setTimeout(() => done(false), Number(args.ms)))
        ])
        return text(`${listed ? "listed" : "not listed"}: ${state.listCalls}`)
      }
      case "stats":
        return text(JSON.stringify({ listCalls: state.listCalls, started: state.started, cancelled: state.cancelled, parent: process.ppid }))
      default:
        return { content: [{ type: "text", text: `no tool ${request.params.name}` }], isError: true }
    }
  })
  return server
}

/** A Streamable HTTP MCP server on 127.0.0.1 (the SDK's web-standard transport, one per session, inside Bun.serve). */
export interface HttpTestServer {
  readonly url: string
  readonly port: number
  readonly state: TestServerState
  /** Stops listening and drops every open connection (as if the server died). */
  readonly stop: () => Promise<void>
  /** Forgets every session (as a restarted server would); requests for them get 404. */
  readonly forget: () => void
}

export const serveHttp = (state: TestServerState, options: TestServerOptions & { readonly port?: number } = {}): HttpTestServer => {
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>()
  const bun = Bun.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    idleTimeout: 0,
    fetch: async (request) => {
      const id = request.headers.get("mcp-session-id")
      const known = id === null ? undefined : sessions.get(id)
      if (known !== undefined) return known.handleRequest(request)
      if (id !== null) return new Response("unknown session", { status: 404 })
      const transport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => crypto.randomUUID(),
        onsessioninitialized: (session) => void sessions.set(session, transport)
      })
      await makeServer(state, options).connect(transport)
      return transport.handleRequest(request)
    }
  })
  return {
    url: `http://127.0.0.1:${bun.port}/mcp`,
    port: bun.port ?? 0,
    state,
    stop: async () => {
      await bun.stop(true)
      sessions.clear()
    },
    forget: () => sessions.clear()
  }
}

if (import.meta.main) {
  const flags = process.argv.slice(2)
  const count = flags.indexOf("--tools")
  const state = makeState()
  const server = makeServer(state, {
    hostile: flags.includes("--hostile"),
    exitAfterList: flags.includes("--exit-after-list"),
    ...(count >= 0 ? { extraTools: Number(flags[count + 1]) } : {})
  })
  await server.connect(new StdioServerTransport())
}
