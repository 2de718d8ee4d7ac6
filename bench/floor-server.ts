/**
 * The floor (bench row 5): a bare Bun websocket server, no framework, no store, no reducers. On `{"type":"start"}` it
 * streams the bench endpoint's SSE reply and forwards every content chunk at once as an `events` frame of the same
 * shape as Agent Tape's, so the two are compared on the same chunks. Started by bench/lib/server.ts; prints its port.
 */

interface Conn {
  seq: number
}

const server = Bun.serve<Conn>({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req, srv) {
    if (srv.upgrade(req, { data: { seq: 0 } })) return undefined
    return new Response("websocket only", { status: 426 })
  },
  websocket: {
    async message(ws, message) {
      const frame = JSON.parse(String(message)) as { type: string; id: string; url: string }
      if (frame.type !== "start") return
      const session = `floor-${frame.id}`
      const res = await fetch(`${frame.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "bench", stream: true, messages: [{ role: "user", content: `bench-${frame.id}` }] })
      })
      const reader = res.body!.getReader()
      const decoder = new TextDecoder()
      let buffer = ""
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        buffer += decoder.decode(value, { stream: true })
        let cut: number
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const line = buffer.slice(0, cut)
          buffer = buffer.slice(cut + 2)
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue
          const data = JSON.parse(line.slice(6)) as { choices: Array<{ delta?: { content?: string } }> }
          const text = data.choices[0]?.delta?.content
          if (!text) continue
          const e = { session, seq: ++ws.data.seq, at: Date.now(), by: "model", type: "AssistantDelta", turnId: frame.id, text }
          ws.send(`{"type":"events","session":${JSON.stringify(session)},"events":[${JSON.stringify(e)}]}`)
        }
      }
      ws.send(JSON.stringify({ type: "done", id: frame.id }))
    }
  }
})

process.stdout.write(`floor listening on ${server.port}\n`)
