/**
 * A compaction on a PostgreSQL cluster (issue 14): the process summarising holds a lease like a turn's; killed
 * (SIGKILL) mid-summary, the other server's reaper finds the expired lease, the writer trims the memory (MemoryTrimmed)
 * and starts the turn the compaction was for, which that server runs. Skipped, saying why, when DATABASE_URL is not set.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { fold } from "../src/domain/state.ts"
import { databaseUrl, freshSchema, pgSuite, type TestSchema } from "./support/pg.ts"
import { compacting, sendUntilCompacting, slowSummaryScript, tapeOnceAnswered } from "./support/compaction.ts"
import { Client, type ServerProcess, startServer, tempDir } from "./support/server.ts"

pgSuite("compaction on a PostgreSQL cluster (lease 600 ms)", () => {
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
    const env = { TAPE_STORE: "postgres", DATABASE_URL: schema.url, TAPE_LEASE_MS: "600", LLM_SCRIPT: slowSummaryScript(dir), TAPE_CONTEXT_TOKENS: "2500" }
    const a = await startServer(env)
    const b = await startServer(env)
    procs.push(a, b)
    const c = await Client.connect(a.port)
    const session = await c.hello(null)
    const sent = await sendUntilCompacting(c)
    expect(compacting(c.events)).toBe(true)
    c.close()
    await a.stop("SIGKILL")

    const tape = await tapeOnceAnswered(b.port, session, sent)
    const trimmed = tape.findIndex((e) => e.type === "MemoryTrimmed")
    expect(tape[trimmed]).toMatchObject({ by: "system", reason: "no summary: the process summarising it stopped" })
    expect(tape[trimmed + 1]?.type).toBe("TurnStarted")
    expect(fold(session, tape).messages.items.filter((i) => i.kind === "assistant" && i.status === "completed")).toHaveLength(sent)
    await b.stop()
  }, 120_000)
})
