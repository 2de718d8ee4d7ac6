// Issue 10, finding 1 (and the tool-args half of 2), replayed on the real server process over real websockets: a
// frame nested 50,000 deep, numbers out of range, and approve with huge or deep args each get a short, typed answer;
// the connection and the server go on.
import { describe, expect, test } from "bun:test"
import { Client, exportTape, tempDir, writeScript } from "./support/server.ts"
import { useServers } from "./support/servers.ts"

const start = useServers()

/** Sends a raw frame and resolves with the next frame that is not `events`. */
const answerTo = async (c: Client, frame: string) => {
  const before = c.frames.length
  c.send(frame)
  const next = () => c.frames.slice(before).find((f) => f.type !== "events")
  await c.until(() => next() !== undefined, "an answer")
  return next()!
}

describe("finding 1: one websocket frame cannot kill the process", () => {
  test("hello nested 50,000 deep (100 KB) gets bad_frame; so do 20,000 deep, 65 deep and 1e309; the server goes on", async () => {
    const server = await start()
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    const bombs = [
      `{"type":"hello","session":${"[".repeat(50_000)}${"]".repeat(50_000)}}`,
      `{"type":"hello","session":${"[".repeat(20_000)}${"]".repeat(20_000)}}`,
      `{"type":"command","id":"x","session":"${session}","command":{"type":"approve","callId":"c","args":${'{"a":'.repeat(64)}1${"}".repeat(64)}}}`,
      `{"type":"hello","session":null,"after":1e309}`,
      // Unbalanced: the scan refuses the depth before the parser sees the missing brackets.
      `{"type":"hello","session":${"[".repeat(100_000)}`
    ]
    for (const bomb of bombs) {
      const answer = await answerTo(c, bomb)
      expect(answer.type === "error" && answer.code).toBe("bad_frame")
      expect(answer.type === "error" && answer.message.length).toBeLessThan(200)
    }
    expect(c.closed).toBeNull()
    expect(server.proc.exitCode).toBeNull()
    // Still serving on the same connection and on a new one; nothing was appended.
    expect((await c.command({ type: "cancel_queued", messageId: "m" })).type).toBe("nack")
    const d = await Client.connect(server.port)
    expect(await d.hello(session)).toBe(session)
    expect((await exportTape(server.port, session)).map((e) => e.type)).toEqual(["SessionCreated"])
    // One short log line per refusal at most: no stacks.
    expect(server.output()).not.toContain("Inspectable")
    c.close()
    d.close()
  })

  test("bad frames are answered with a description that never echoes the frame", async () => {
    const server = await start()
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    const secret = "s3cret".repeat(50_000)
    for (const frame of [
      { type: "command", id: "x", session, command: { type: "send_message", text: secret + "x".repeat(100_000) } },
      { type: "hello", session: secret },
      { type: secret },
      { type: "command", id: "x", session, command: { type: "approve", callId: secret } }
    ]) {
      const answer = await answerTo(c, JSON.stringify(frame))
      expect(answer.type === "error" && answer.code).toBe("bad_frame")
      expect(JSON.stringify(answer)).not.toContain("s3cret".repeat(10))
      expect(JSON.stringify(answer).length).toBeLessThan(800)
    }
    c.close()
  })
})

describe("finding 2, the tool-args half: approve with huge or deeply nested args gets a short nack", () => {
  test("each poisoned approve is nacked with a bounded reason, and the call can still be approved", async () => {
    const dir = tempDir("poison")
    const script = writeScript(dir, { turns: [{ text: "Let me.", toolCalls: [{ tool: "eval", args: { code: "6*7" } }] }, { text: "42." }] })
    const server = await start({ LLM_SCRIPT: script })
    const c = await Client.connect(server.port)
    await c.hello(null)
    expect((await c.command({ type: "send_message", text: "compute" })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "ToolCallRequested"), "the tool call")
    const call = c.events.find((e) => e.type === "ToolCallRequested")
    if (call?.type !== "ToolCallRequested") throw new Error("no call")
    let deep: unknown = "leaf"
    for (let i = 0; i < 58; i++) deep = [deep]
    const poisons: ReadonlyArray<Record<string, unknown>> = [
      { code: deep },
      { code: ["j".repeat(500_000)] },
      { code: 1, junk: "j".repeat(500_000) },
      { code: "1", ["k".repeat(100_000)]: 1 },
      Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`k${i}`, i]))
    ]
    for (const args of poisons) {
      const reply = await c.command({ type: "approve", callId: call.callId, args })
      expect(reply.type).toBe("nack")
      if (reply.type === "nack") {
        expect(reply.error.message).toContain("invalid args for eval")
        expect(reply.error.message.length).toBeLessThan(700)
        expect(reply.error.message).not.toContain("jjjjjjjjjj")
      }
    }
    expect((await c.command({ type: "approve", callId: call.callId })).type).toBe("ack")
    await c.until(() => c.has((e) => e.type === "TurnCompleted" && e.turnId !== call.turnId), "the answer")
    c.close()
  })
})
