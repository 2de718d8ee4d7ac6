/**
 * A crash in the middle of a compaction (issue 14), with the real server process on SQLite: the server is killed
 * (SIGKILL) while the scripted model is still writing a summary; on restart, recovery closes the compaction
 * (MemoryTrimmed, reason restart) and starts the turn it was for, which is run: the session stays usable.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { Envelope } from "../src/domain/Event.ts"
import { fold } from "../src/domain/state.ts"
import { Client, exportTape, startServer, tempDir, writeScript } from "./support/server.ts"

const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 9}w${i}`).join(" ")

describe("recovery after kill -9 during a compaction", () => {
  test("the restarted server trims the open compaction and runs the turn it was for", async () => {
    const dir = tempDir("compaction-recovery")
    const turns = Array.from({ length: 20 }, (_, i) => ({ text: `Reply ${i}: ${words(120, "r")}`, chunkChars: 256, delayMs: 0 }))
    // The summary takes minutes (a chunk per second): the kill comes while it is being written.
    const script = writeScript(dir, { turns, summaries: [{ text: "s".repeat(64 * 600), delayMs: 1_000 }] })
    const env = { TAPE_STORE: "sqlite", TAPE_DATA: join(dir, "data"), LLM_SCRIPT: script, TAPE_CONTEXT_TOKENS: "2500" }
    const compacting = (tape: ReadonlyArray<Envelope>) => fold("t", tape).interrupts.compacting !== null

    const first = await startServer(env)
    const c = await Client.connect(first.port)
    const session = await c.hello(null)
    let sent = 0
    for (; sent < 10; ) {
      await c.command({ type: "send_message", text: `Message ${sent}: ${words(40, "m")}` })
      sent++
      await c.until(() => compacting(c.events) || c.events.filter((e) => e.type === "TurnCompleted").length === sent, "the turn completes or a compaction starts")
      if (compacting(c.events)) break
    }
    expect(compacting(c.events)).toBe(true)
    c.close()
    await first.stop("SIGKILL")

    const second = await startServer(env)
    const deadline = Date.now() + 60_000
    let tape = await exportTape(second.port, session)
    while (Date.now() < deadline && fold(session, tape).messages.items.filter((i) => i.kind === "assistant" && i.status === "completed").length < sent) {
      await Bun.sleep(200)
      tape = await exportTape(second.port, session)
    }
    const trimmed = tape.findIndex((e) => e.type === "MemoryTrimmed")
    expect(tape[trimmed]).toMatchObject({ by: "system", reason: "the compaction was stopped by the restart" })
    expect(tape[trimmed + 1]?.type).toBe("TurnStarted")
    const state = fold(session, tape)
    expect(state.interrupts.compacting).toBeNull()
    // The turn the compaction was for ran: every message has its completed reply.
    expect(state.messages.items.filter((i) => i.kind === "assistant" && i.status === "completed")).toHaveLength(sent)
    await second.stop()
  }, 120_000)
})
