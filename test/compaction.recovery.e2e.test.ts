/**
 * A crash in the middle of a compaction (issue 14), with the real server process on SQLite: the server is killed
 * (SIGKILL) while the scripted model is still writing a summary; on restart, recovery closes the compaction
 * (MemoryTrimmed, reason restart) and starts the turn it was for, which is run: the session stays usable.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { fold } from "../src/domain/state.ts"
import { compacting, sendUntilCompacting, slowSummaryScript, tapeOnceAnswered } from "./support/compaction.ts"
import { Client, startServer, tempDir } from "./support/server.ts"

describe("recovery after kill -9 during a compaction", () => {
  test("the restarted server trims the open compaction and runs the turn it was for", async () => {
    const dir = tempDir("compaction-recovery")
    const env = { TAPE_STORE: "sqlite", TAPE_DATA: join(dir, "data"), LLM_SCRIPT: slowSummaryScript(dir), TAPE_CONTEXT_TOKENS: "2500" }

    const first = await startServer(env)
    const c = await Client.connect(first.port)
    const session = await c.hello(null)
    const sent = await sendUntilCompacting(c)
    expect(compacting(c.events)).toBe(true)
    c.close()
    await first.stop("SIGKILL")

    const second = await startServer(env)
    const tape = await tapeOnceAnswered(second.port, session, sent)
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
