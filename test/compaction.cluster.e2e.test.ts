/**
 * A compaction on a PostgreSQL cluster (issue 14): the process summarising holds a lease like a turn's; killed
 * (SIGKILL) mid-summary, the other server's reaper finds the expired lease, the writer trims the memory (MemoryTrimmed)
 * and starts the turn the compaction was for, which that server runs. Skipped, saying why, when DATABASE_URL is not set.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type { Envelope } from "../src/domain/Event.ts"
import { fold } from "../src/domain/state.ts"
import { databaseUrl, freshSchema, type TestSchema } from "./support/pg.ts"
import { Client, exportTape, type ServerProcess, startServer, tempDir, writeScript } from "./support/server.ts"

const suite = databaseUrl ? describe : describe.skip
const title = databaseUrl
  ? "compaction on a PostgreSQL cluster (lease 600 ms)"
  : "compaction on a PostgreSQL cluster — SKIPPED because DATABASE_URL is not set (set it to a PostgreSQL database to run these)"

const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 9}w${i}`).join(" ")

suite(title, () => {
  let schema: TestSchema
  const procs: Array<ServerProcess> = []
  beforeAll(async () => {
    schema = await freshSchema(databaseUrl!)
  }, 60_000)
  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill("SIGKILL")
    await schema?.drop()
  })

  test("a server killed mid-summary: another server's reaper trims the memory and runs the turn", async () => {
    const dir = tempDir("compaction-cluster")
    const turns = Array.from({ length: 20 }, (_, i) => ({ text: `Reply ${i}: ${words(120, "r")}`, chunkChars: 256, delayMs: 0 }))
    const script = writeScript(dir, { turns, summaries: [{ text: "s".repeat(64 * 600), delayMs: 1_000 }] })
    const env = { TAPE_STORE: "postgres", DATABASE_URL: schema.url, TAPE_LEASE_MS: "600", LLM_SCRIPT: script, TAPE_CONTEXT_TOKENS: "2500" }
    const a = await startServer(env)
    const b = await startServer(env)
    procs.push(a, b)
    const compacting = (tape: ReadonlyArray<Envelope>) => fold("t", tape).interrupts.compacting !== null
    const c = await Client.connect(a.port)
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
    await a.stop("SIGKILL")

    const deadline = Date.now() + 60_000
    let tape = await exportTape(b.port, session)
    while (Date.now() < deadline && fold(session, tape).messages.items.filter((i) => i.kind === "assistant" && i.status === "completed").length < sent) {
      await Bun.sleep(200)
      tape = await exportTape(b.port, session)
    }
    const trimmed = tape.findIndex((e) => e.type === "MemoryTrimmed")
    expect(tape[trimmed]).toMatchObject({ by: "system", reason: "no summary: the process summarising it stopped" })
    expect(tape[trimmed + 1]?.type).toBe("TurnStarted")
    expect(fold(session, tape).messages.items.filter((i) => i.kind === "assistant" && i.status === "completed")).toHaveLength(sent)
    await b.stop()
  }, 120_000)
})
