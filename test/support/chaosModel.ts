/**
 * Test support for the chaos test: an OpenAI-compatible model endpoint of our own (LLM_BASE_URL) that plays what each
 * message asks for — text, slow text, tool calls, a stall mid-stream, a flood, an error — and a target for `http_get`
 * that counts every request per URL, so a tool call that ran twice (or ran without being started) shows. Also builds
 * the scripts (LLM_SCRIPT) of the processes that play the scripted model instead.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { renderReply, type Script, type ScriptTurn } from "../../src/llm/offline.ts"

/** What a message asks the endpoint for (its text carries `chaos-<kind>-<tag>`). */
export const chaosKinds = ["text", "slow", "eval", "spin", "http", "slowhttp", "auto", "stall", "flood", "fail"] as const
export type ChaosKind = (typeof chaosKinds)[number]

/** A request the endpoint is still answering. */
export interface OpenRequest {
  readonly id: number
  readonly kind: ChaosKind | "result"
  /** The `<tag>` of the message that asked for it (names the session: `s<k>n<n>`). */
  readonly tag: string | undefined
}

export interface ChaosEndpoint {
  /** For LLM_BASE_URL. */
  readonly baseUrl: string
  /** Where `http_get` calls go (`<hitBase>/hit/<id>`), and the TAPE_HTTP_ALLOW entry that lets them. */
  readonly hitBase: string
  readonly allow: string
  /** Requests still streaming now (a stall stays here until its client aborts). */
  readonly open: () => ReadonlyArray<OpenRequest>
  /** Resolves when a request opens or closes, or after `ms`. */
  readonly nextChange: (ms: number) => Promise<void>
  /** Requests served, per kind. */
  readonly served: () => Readonly<Record<string, number>>
  /** Requests seen by the `http_get` target, per path. */
  readonly hits: ReadonlyMap<string, number>
  readonly stop: () => Promise<void>
}

/** Characters of a flood reply: over the 1 MiB reply cap of DESIGN.md §8 (TAPE_MAX_REPLY_BYTES). */
export const FLOOD_CHARS = 1_200_000
/** How long the `http_get` target waits before answering a `/hit/slow/` URL (longer than a lease). */
export const SLOW_HIT_MS = 1_500
/** eval code that spins for longer than a lease. */
export const SPIN_CODE = "const t = Date.now(); while (Date.now() - t < 1200) {} ; 'spun'"

const TOKEN = /chaos-([a-z]+)-(s\d+n\d+)/g
const encoder = new TextEncoder()

const contentText = (content: unknown): string =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
      ? content.map((p: unknown) => (typeof p === "object" && p !== null && "text" in p && typeof p.text === "string" ? p.text : "")).join("")
      : ""

/** The kind and tag asked for by the last user message of an OpenAI `messages` array; `result` after tool results. */
const askedFor = (messages: ReadonlyArray<unknown>): { kind: ChaosKind | "result"; tag: string | undefined } => {
  const users = messages.filter((m): m is { role: string; content: unknown } => typeof m === "object" && m !== null && "role" in m && m.role === "user")
  const text = contentText(users.at(-1)?.content)
  if (text.trimStart().startsWith("Tool results:")) return { kind: "result", tag: undefined }
  const last = [...text.matchAll(TOKEN)].at(-1)
  const kind = chaosKinds.find((k) => k === last?.[1])
  return kind === undefined ? { kind: "text", tag: undefined } : { kind, tag: last?.[2] }
}

const filler = (n: number) => "the tape holds every chunk of this reply ".repeat(Math.ceil(n / 41)).slice(0, n)

export const startChaosEndpoint = (): ChaosEndpoint => {
  const open = new Map<number, OpenRequest>()
  let changed: Array<() => void> = []
  const change = () => {
    const waiting = changed
    changed = []
    for (const w of waiting) w()
  }
  const served: Record<string, number> = {}
  const hits = new Map<string, number>()
  let ids = 0
  let hitBase = ""

  const reply = (id: number, kind: ChaosKind | "result"): { raw: string; chunkChars: number; delayMs: number; stallAfter?: number } => {
    switch (kind) {
      case "result":
        return { raw: renderReply("The tool answered; that is all.", []), chunkChars: 8, delayMs: 5 }
      case "text":
        return { raw: renderReply(`A short reply (${id}).`, []), chunkChars: 8, delayMs: 5 }
      case "slow":
        return { raw: renderReply(filler(240), []), chunkChars: 3, delayMs: 25 }
      case "eval":
        return { raw: renderReply("Let me compute.", [{ tool: "eval", args: { code: "6*7" } }]), chunkChars: 16, delayMs: 5 }
      case "spin":
        return { raw: renderReply("This takes a while.", [{ tool: "eval", args: { code: SPIN_CODE } }]), chunkChars: 16, delayMs: 5 }
      case "http":
        return { raw: renderReply("Fetching.", [{ tool: "http_get", args: { url: `${hitBase}/hit/e${id}` } }]), chunkChars: 16, delayMs: 5 }
      case "slowhttp":
        return { raw: renderReply("Fetching slowly.", [{ tool: "http_get", args: { url: `${hitBase}/hit/slow/e${id}` } }]), chunkChars: 16, delayMs: 5 }
      case "auto":
        return { raw: renderReply("Looking around.", [{ tool: "list_files", args: {} }]), chunkChars: 16, delayMs: 5 }
      case "stall":
        // A few chunks, then nothing at all until the client goes away.
        return { raw: renderReply(filler(200), []), chunkChars: 6, delayMs: 10, stallAfter: 4 }
      case "flood":
        return { raw: renderReply(filler(FLOOD_CHARS), []), chunkChars: 32 * 1024, delayMs: 0 }
      case "fail":
        return { raw: "", chunkChars: 1, delayMs: 0 }
      default: {
        const _exhaustive: never = kind
        return _exhaustive
      }
    }
  }

  const chat = async (req: Request): Promise<Response> => {
    const body = (await req.json().catch(() => undefined)) as { messages?: unknown; stream?: unknown } | undefined
    const messages = Array.isArray(body?.messages) ? body.messages : []
    const { kind, tag } = askedFor(messages)
    const id = ++ids
    served[kind] = (served[kind] ?? 0) + 1
    if (kind === "fail") return Response.json({ error: { message: "chaos: upstream overloaded", type: "server_error" } }, { status: 500 })
    const plan = reply(id, kind)
    const pieces: Array<string> = []
    for (let i = 0; i < plan.raw.length; i += plan.chunkChars) pieces.push(plan.raw.slice(i, i + plan.chunkChars))
    const rid = `chatcmpl-c${id}`
    const sse = (data: unknown) => encoder.encode(`data: ${JSON.stringify(data)}\n\n`)
    const chunk = (delta: object, finish: string | null) =>
      sse({ id: rid, object: "chat.completion.chunk", created: 0, model: "chaos", choices: [{ index: 0, delta, finish_reason: finish }] })
    const usage = { prompt_tokens: 10, completion_tokens: Math.ceil(plan.raw.length / 4), total_tokens: 10 + Math.ceil(plan.raw.length / 4) }
    if (body?.stream !== true) {
      return Response.json({ id: rid, object: "chat.completion", created: 0, model: "chaos", choices: [{ index: 0, message: { role: "assistant", content: plan.raw }, finish_reason: "stop" }], usage })
    }
    open.set(id, { id, kind, tag })
    change()
    let closed = false
    const close = () => {
      closed = true
      if (open.delete(id)) change()
    }
    const aborted = new Promise<void>((res) => req.signal.addEventListener("abort", () => res(), { once: true }))
    void aborted.then(close)
    let sent = 0
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk({ role: "assistant", content: "" }, null))
      },
      async pull(controller) {
        if (closed) return
        if (plan.stallAfter !== undefined && sent >= plan.stallAfter) {
          await aborted
          return
        }
        const piece = pieces[sent]
        if (piece === undefined) {
          controller.enqueue(chunk({}, "stop"))
          controller.enqueue(sse({ id: rid, object: "chat.completion.chunk", created: 0, model: "chaos", choices: [], usage }))
          controller.enqueue(encoder.encode("data: [DONE]\n\n"))
          close()
          controller.close()
          return
        }
        if (plan.delayMs > 0) await Bun.sleep(plan.delayMs)
        if (closed) return
        controller.enqueue(chunk({ content: piece }, null))
        sent += 1
      },
      cancel() {
        close()
      }
    })
    return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } })
  }

  const hit = async (url: URL): Promise<Response> => {
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1)
    if (url.pathname.startsWith("/hit/slow/")) await Bun.sleep(SLOW_HIT_MS)
    return new Response(`hit ${url.pathname}`, { headers: { "content-type": "text/plain" } })
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch(req) {
      const url = new URL(req.url)
      if (req.method === "POST" && url.pathname.endsWith("/chat/completions")) return chat(req)
      if (req.method === "GET" && url.pathname.startsWith("/hit/")) return hit(url)
      return new Response("not found", { status: 404 })
    }
  })
  hitBase = `http://127.0.0.1:${server.port}`
  return {
    baseUrl: `${hitBase}/v1`,
    hitBase,
    allow: `127.0.0.1:${server.port}`,
    open: () => [...open.values()],
    nextChange: (ms) =>
      new Promise<void>((res) => {
        const timer = setTimeout(res, ms)
        changed.push(() => {
          clearTimeout(timer)
          res()
        })
      }),
    served: () => ({ ...served }),
    hits,
    stop: () => server.stop(true)
  }
}

/**
 * A script for one process (LLM_SCRIPT): `turns` entries drawn with `random`, each `http_get` URL unique to this
 * process (`p<process>e<entry>`), so that a call run twice shows as two hits on one URL.
 */
export const writeChaosScript = (dir: string, process: number, hitBase: string, random: () => number, turns = 400): string => {
  const entry = (i: number): ScriptTurn => {
    const r = random()
    if (r < 0.3) return { text: `Scripted reply ${process}.${i}.`, chunkChars: 6, delayMs: 5 }
    if (r < 0.45) return { text: filler(180), chunkChars: 3, delayMs: 20 }
    if (r < 0.57) return { text: "Let me compute.", toolCalls: [{ tool: "eval", args: { code: `${i}*2` } }] }
    if (r < 0.63) return { text: "This takes a while.", toolCalls: [{ tool: "eval", args: { code: SPIN_CODE } }] }
    if (r < 0.78) return { text: "Fetching.", toolCalls: [{ tool: "http_get", args: { url: `${hitBase}/hit/p${process}e${i}` } }] }
    if (r < 0.84) return { text: "Fetching slowly.", toolCalls: [{ tool: "http_get", args: { url: `${hitBase}/hit/slow/p${process}e${i}` } }] }
    if (r < 0.9) return { text: "Looking around.", toolCalls: [{ tool: "list_files", args: {} }] }
    if (r < 0.95) return { fail: "scripted: upstream overloaded", failMode: "500" }
    return { text: filler(120), fail: "scripted: connection cut", failMode: "drop" }
  }
  const script: Script = { turns: Array.from({ length: turns }, (_, i) => entry(i)) }
  const path = join(dir, `script-${process}.json`)
  writeFileSync(path, JSON.stringify(script))
  return path
}
