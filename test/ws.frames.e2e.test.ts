// The websocket's catch-up of a long tape (issue 11's list of guarantees no test pinned): it is split into frames of at
// most 2,000 events and about 256 KB, in order, none lost and none repeated. The real server over a real socket.
import { describe, expect, test } from "bun:test"
import type { Envelope } from "../src/domain/Event.ts"
import { Client } from "./support/server.ts"
import { useServers } from "./support/servers.ts"

const start = useServers()

const tapeOf = (messages: number, chars: number): string => {
  const lines = [JSON.stringify({ session: "long", seq: 1, at: 1, by: "system", type: "SessionCreated" })]
  for (let seq = 2; seq <= messages + 1; seq++) {
    lines.push(JSON.stringify({ session: "long", seq, at: 1, by: "user:a", type: "UserMessageAdded", messageId: `msg-${seq}`, text: "x".repeat(chars) }))
  }
  return `${lines.join("\n")}\n`
}

describe("catch-up frames", () => {
  for (const [what, messages, chars, maxEvents] of [
    ["many small events", 5_000, 4, 2_000],
    ["large events", 300, 4_000, 80]
  ] as const) {
    test(`${what}: split into bounded frames, in order, each event once`, async () => {
      const server = await start()
      const res = await fetch(`http://127.0.0.1:${server.port}/api/sessions/import`, {
        method: "POST",
        headers: { "content-type": "application/x-ndjson" },
        body: tapeOf(messages, chars)
      })
      expect(res.status).toBe(201)
      const { session } = (await res.json()) as { session: string }
      const c = await Client.connect(server.port)
      await c.hello(session)
      await c.until(() => c.events.length >= messages + 1, "the whole tape", 30_000)
      const frames = c.frames.flatMap((f) => (f.type === "events" ? [f.events as ReadonlyArray<Envelope>] : []))
      expect(frames.length).toBeGreaterThan(1)
      for (const f of frames) {
        expect(f.length).toBeLessThanOrEqual(maxEvents)
        expect(JSON.stringify(f).length).toBeLessThan(2 * 256 * 1024)
      }
      expect(c.events.map((e) => e.seq)).toEqual(Array.from({ length: messages + 1 }, (_, i) => i + 1))
      c.close()
    })
  }
})
