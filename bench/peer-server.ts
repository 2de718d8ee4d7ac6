/**
 * The AI SDK peer (issue 15): the server most developers would write instead of Agent Tape. A Bun websocket server
 * that calls the AI SDK's `streamText` with `@ai-sdk/openai-compatible` on the bench endpoint, forwards each text
 * delta at once in an `events` frame of Agent Tape's shape (the floor's protocol subset, bench/floor-server.ts), and
 * stores the finished exchange (user message + assistant message) in SQLite (`bun:sqlite`, WAL, synchronous=NORMAL
 * like our store) in `onFinish`. Deltas are not stored: a crash mid-reply loses the reply. Devdependency-only; started
 * by bench/lib/server.ts with the SQLite file in `PEER_DB`; prints its port.
 */
import { Database } from "bun:sqlite"
import { createOpenAICompatible } from "@ai-sdk/openai-compatible"
import { streamText } from "ai"

interface Conn {
  seq: number
}

const db = new Database(process.env.PEER_DB ?? ":memory:", { create: true })
db.exec("PRAGMA journal_mode = WAL")
db.exec("PRAGMA synchronous = NORMAL")
db.exec("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, session TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL)")
const insert = db.prepare("INSERT INTO messages (session, role, text, at) VALUES (?, ?, ?, ?)")
const storeExchange = db.transaction((session: string, user: string, assistant: string) => {
  const at = Date.now()
  insert.run(session, "user", user, at)
  insert.run(session, "assistant", assistant, at)
})

// One provider per endpoint URL, made once (as a server would at start).
const providers = new Map<string, ReturnType<typeof createOpenAICompatible>>()
const providerFor = (url: string) => {
  let p = providers.get(url)
  if (p === undefined) {
    p = createOpenAICompatible({ name: "bench", baseURL: url, apiKey: "bench" })
    providers.set(url, p)
  }
  return p
}

const server = Bun.serve<Conn>({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  fetch(req, srv) {
    if (srv.upgrade(req, { data: { seq: 0 } })) return undefined
    return new Response("websocket only", { status: 426 })
  },
  websocket: {
    async message(ws, message) {
      let frame: { type?: unknown; id?: unknown; url?: unknown }
      try {
        frame = JSON.parse(String(message)) as typeof frame
      } catch {
        return
      }
      if (frame.type !== "start" || typeof frame.id !== "string" || typeof frame.url !== "string") return
      const id = frame.id
      const session = `peer-${id}`
      const prompt = `bench-${id}`
      try {
        const result = streamText({
          model: providerFor(frame.url).chatModel("bench"),
          prompt,
          maxRetries: 0,
          onFinish: (event) => {
            storeExchange(session, prompt, event.text)
          }
        })
        for await (const text of result.textStream) {
          if (text.length === 0) continue
          const e = { session, seq: ++ws.data.seq, at: Date.now(), by: "model", type: "AssistantDelta", turnId: id, text }
          ws.send(`{"type":"events","session":${JSON.stringify(session)},"events":[${JSON.stringify(e)}]}`)
        }
        ws.send(JSON.stringify({ type: "done", id }))
      } catch (error) {
        ws.send(JSON.stringify({ type: "error", id, message: error instanceof Error ? error.message : String(error) }))
      }
    }
  }
})

process.stdout.write(`peer listening on ${server.port}\n`)
