// The scripted model across a restart: the entry a turn plays is chosen from the session's tape (its earlier model
// turns), not from a cursor in the process, so a new server process (a new in-process endpoint) goes on where the
// old one stopped instead of playing the script from its first entry again.
import { afterAll, describe, expect, test } from "bun:test"
import type { Envelope } from "../src/domain/Event.ts"
import { Client, type ServerProcess, startServer, tempDir, writeScript } from "./support/server.ts"

const running: Array<ServerProcess> = []
afterAll(async () => {
  for (const s of running) if (s.proc.exitCode === null) await s.stop("SIGKILL")
})
const start = async (env: Record<string, string>) => {
  const s = await startServer(env)
  running.push(s)
  return s
}

const repliesOf = (events: ReadonlyArray<Envelope>) => {
  const texts = new Map<string, string>()
  for (const e of events) {
    if (e.type === "TurnStarted") texts.set(e.turnId, "")
    if (e.type === "AssistantDelta") texts.set(e.turnId, (texts.get(e.turnId) ?? "") + e.text)
  }
  return [...texts.values()]
}

describe("scripted model: the entry comes from the tape", () => {
  test("after a restart, the session's second turn plays entry 1, not entry 0 again", async () => {
    const dir = tempDir("script-restart")
    const script = writeScript(dir, { turns: [{ text: "Entry zero.", chunkChars: 4, delayMs: 1 }, { text: "Entry one.", chunkChars: 4, delayMs: 1 }] })
    const env = { LLM_SCRIPT: script, TAPE_STORE: "sqlite", TAPE_DATA: dir }
    const completed = (c: Client, n: number) => () => c.events.filter((e) => e.type === "TurnCompleted").length === n

    const first = await start(env)
    const a = await Client.connect(first.port)
    const session = await a.hello(null)
    expect((await a.command({ type: "send_message", text: "one" })).type).toBe("ack")
    await a.until(completed(a, 1), "the first turn completes")
    a.close()
    await first.stop("SIGTERM")

    const second = await start(env)
    const b = await Client.connect(second.port)
    await b.hello(session)
    expect((await b.command({ type: "send_message", text: "two" })).type).toBe("ack")
    await b.until(completed(b, 2), "the second turn completes")
    expect(repliesOf(b.events)).toEqual(["Entry zero.", "Entry one."])
    b.close()
  })
})
