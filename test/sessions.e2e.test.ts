// The sessions a user manages over HTTP and the websocket (issue 13): delete (never while it runs), search by title
// and by what was said, rename, and the titles of forks and imports. The real server process over real sockets.
import { describe, expect, test } from "bun:test"
import { Client, exportTape, tempDir, writeScript } from "./support/server.ts"
import { errorOf, useServers } from "./support/servers.ts"

const start = useServers()

const list = async (port: number, q: string) => {
  const res = await fetch(`http://127.0.0.1:${port}/api/sessions?q=${encodeURIComponent(q)}`)
  return ((await res.json()) as { sessions: Array<{ session: string; title: string; importedFrom?: unknown; forkedFrom?: unknown }> }).sessions
}

describe("sessions", () => {
  test("DELETE removes an idle session for good; a running one is refused (409) until stopped; unknown is 404", async () => {
    const dir = tempDir("sessions-delete")
    // The script's entries are counted per session, so each session's first turn is the same long reply: the idle
    // one is made idle by stopping it, the busy one is left streaming (20 s) while the test runs.
    const server = await start({ LLM_SCRIPT: writeScript(dir, { turns: [{ text: "x".repeat(2_000), chunkChars: 2, delayMs: 20 }] }) })
    const c = await Client.connect(server.port)
    const idle = await c.hello(null)
    await c.command({ type: "send_message", text: "first" })
    await c.until(() => c.has((e) => e.session === idle && e.type === "AssistantDelta"), "the first reply streaming")
    expect((await c.command({ type: "interrupt" }, idle)).type).toBe("ack")
    await c.until(() => c.has((e) => e.session === idle && e.type === "TurnInterrupted"), "the first reply stopped")
    const busy = await c.hello(null)
    await c.command({ type: "send_message", text: "a long one" })
    await c.until(() => c.has((e) => e.session === busy && e.type === "AssistantDelta"), "the long reply streaming")
    const del = (id: string, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${server.port}/api/sessions/${id}`, { method: "DELETE", headers })

    const refused = await del(busy)
    expect(refused.status).toBe(409)
    expect((await errorOf(refused)).code).toBe("busy")
    // A cross-site page cannot delete.
    expect((await del(idle, { origin: "http://evil.example" })).status).toBe(403)
    expect((await del(idle)).status).toBe(204)
    expect((await del(idle)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions/${idle}/events`)).status).toBe(404)
    const after = await Client.connect(server.port)
    after.send({ type: "hello", session: idle })
    await after.until(() => after.frames.some((f) => f.type === "error"), "the refusal of the deleted session")
    expect(after.frames.find((f) => f.type === "error")).toMatchObject({ code: "unknown_session" })
    // Stopped, the busy one can go too.
    expect((await c.command({ type: "interrupt" }, busy)).type).toBe("ack")
    expect((await del(busy)).status).toBe(204)
  })

  test("search finds sessions by title or by a user's words; rename changes the title; forks and imports are titled so", async () => {
    const server = await start()
    const c = await Client.connect(server.port)
    const a = await c.hello(null)
    await c.command({ type: "send_message", text: "Tell me about the Keystone species" })
    await c.until(() => c.has((e) => e.type === "TurnCompleted"), "the offline reply")
    const b = await c.hello(null)
    await c.command({ type: "send_message", text: "hello there" }, b)
    expect((await c.command({ type: "rename", title: "keystone plans" }, b)).type).toBe("ack")
    expect((await c.command({ type: "rename", title: "   " }, b))).toMatchObject({ type: "nack", error: { code: "empty_title" } })
    expect((await list(server.port, "KEYSTONE")).map((s) => s.session).sort()).toEqual([a, b].sort())
    expect((await list(server.port, "species")).map((s) => s.session)).toEqual([a])

    const fork = await fetch(`http://127.0.0.1:${server.port}/api/sessions/${a}/fork`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ seq: 3 })
    })
    const forked = ((await fork.json()) as { session: string }).session
    const tape = (await exportTape(server.port, a)).map((e) => JSON.stringify(e)).join("\n")
    const imp = await fetch(`http://127.0.0.1:${server.port}/api/sessions/import`, { method: "POST", headers: { "content-type": "application/x-ndjson" }, body: tape })
    const imported = ((await imp.json()) as { session: string }).session
    const all = await list(server.port, "keystone species")
    const titleOf = (id: string) => all.find((s) => s.session === id)
    expect(titleOf(forked)).toMatchObject({ title: "Tell me about the Keystone species (fork @3)", forkedFrom: { session: a, seq: 3 } })
    expect(titleOf(imported)).toMatchObject({ title: "Tell me about the Keystone species (imported)", importedFrom: { session: a } })
    expect(titleOf(imported)?.forkedFrom).toBeUndefined()
  })
})

describe("what the model really saw", () => {
  test("GET /api/sessions/:id/prompt?seq=N answers the request of the turn at N: system prompt, tools, results; never a key", async () => {
    const server = await start({ OPENAI_API_KEY: "sk-secret-do-not-show", OPENAI_BASE_URL: "http://127.0.0.1:9/v1", LLM_SCRIPT: "" })
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    await c.command({ type: "send_message", text: "what is 2+2?" })
    await c.until(() => c.has((e) => e.type === "TurnFailed" || e.type === "TurnCompleted"), "the turn to end (the provider is not there)")
    const res = await fetch(`http://127.0.0.1:${server.port}/api/sessions/${session}/prompt?seq=3`)
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).not.toContain("sk-secret-do-not-show")
    const prompt = JSON.parse(text) as { turnId: string; provider: string; body: { messages: Array<{ role: string; content: unknown }> } }
    expect(prompt).toMatchObject({ turnId: "turn-3", provider: "openai" })
    const [system, user] = prompt.body.messages
    expect(system?.role).toBe("system")
    expect(JSON.stringify(system?.content)).toContain("eval")
    expect(JSON.stringify(user?.content)).toContain("what is 2+2?")
    expect((await fetch(`http://127.0.0.1:${server.port}/api/sessions/nope/prompt`)).status).toBe(404)
  })
})
