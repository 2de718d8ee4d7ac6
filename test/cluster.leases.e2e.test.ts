/**
 * Leases on PostgreSQL (issue 11, faults 1 and 2), with real processes and a short lease (TAPE_LEASE_MS=600): a turn and
 * a tool call several times longer than the lease are not taken from their own server, and a call claimed by a worker
 * that died before it started goes back to the queue. Skipped, saying why, when DATABASE_URL is not set.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Effect, Layer, Redacted, Schedule } from "effect"
import { claimNext } from "../src/cluster/Cluster.ts"
import { Leases, layerPg as leasesPg } from "../src/cluster/Leases.ts"
import { databaseUrl, freshSchema, runSql, pgSuite, type TestSchema } from "./support/pg.ts"
import { ROOT, type Spawned, spawnUntil } from "./support/process.ts"
import { Client, type ServerProcess, startServer, tempDir, writeScript } from "./support/server.ts"

const LEASE_MS = "600"

pgSuite("leases on PostgreSQL (lease 600 ms)", () => {
  let schema: TestSchema
  let env: Record<string, string>
  const procs: Array<ServerProcess | Spawned> = []
  const startWorker = () =>
    spawnUntil([process.execPath, join(ROOT, "src/worker.ts")], { ...process.env, BAML_LOG: "warn", ...env }, /worker ready/)

  beforeAll(async () => {
    schema = await freshSchema(databaseUrl!)
    env = { TAPE_STORE: "postgres", DATABASE_URL: schema.url, TAPE_LEASE_MS: LEASE_MS, TAPE_TOOL_WORKERS: "external" }
  }, 60_000)

  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill("SIGKILL")
    await schema?.drop()
  })

  test("a reply and a tool call lasting several leases run to the end on their own server", async () => {
    const dir = tempDir("lease-long")
    // About 4 s of streaming (over six leases), then an eval that spins for 1.8 s (three leases).
    const script = {
      turns: [
        { text: "x".repeat(400), chunkChars: 4, delayMs: 40, toolCalls: [{ tool: "eval", args: { code: "const t = Date.now(); while (Date.now() - t < 1800) {} ; 'done'" } }] },
        { text: "finished" }
      ]
    }
    const server = await startServer({ ...env, LLM_SCRIPT: writeScript(dir, script) })
    const worker = await startWorker()
    procs.push(server, worker)
    const c = await Client.connect(server.port)
    await c.hello(null)
    await c.command({ type: "send_message", text: "go" })
    await c.until(() => c.has((e) => e.type === "ToolCallRequested"), "the long reply to end with its call", 30_000)
    const call = c.events.find((e) => e.type === "ToolCallRequested")
    if (call?.type !== "ToolCallRequested") throw new Error("no call")
    await c.command({ type: "approve", callId: call.callId })
    await c.until(() => c.events.filter((e) => e.type === "TurnCompleted").length === 2, "the answer after the long call", 30_000)
    expect(c.has((e) => e.type === "TurnInterrupted" || e.type === "ToolExecutionCancelled")).toBe(false)
    const done = c.events.find((e) => e.type === "ToolExecutionSucceeded")
    expect(done?.type === "ToolExecutionSucceeded" && done.output).toContain("done")
    c.close()
    await worker.stop()
  }, 90_000)

  test("a call claimed by a worker that died before starting it goes back to the queue and runs once", async () => {
    const server = await startServer(env)
    procs.push(server)
    const c = await Client.connect(server.port)
    const session = await c.hello(null)
    await c.command({ type: "send_message", text: "what is 6*7?" })
    await c.until(() => c.has((e) => e.type === "ToolCallRequested"), "the eval call")
    const call = c.events.find((e) => e.type === "ToolCallRequested")
    if (call?.type !== "ToolCallRequested") throw new Error("no call")
    await c.command({ type: "approve", callId: call.callId })
    // A worker claims the call, exactly as a worker does, and dies at once: it never starts it, never renews.
    const claimed = await Effect.runPromise(
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        return yield* claimNext(sql, yield* Leases)
      }).pipe(
        Effect.provide(leasesPg("dead-worker", Number(LEASE_MS)).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(schema.url), maxConnections: 1 })))),
        Effect.orDie
      )
    )
    expect(claimed).toMatchObject({ session, call_id: call.callId })
    // A live worker comes: it runs the call once the reaper has put it back.
    procs.push(await startWorker())
    await c.until(() => c.has((e) => e.type === "ToolExecutionSucceeded"), "the call to run after all", 30_000)
    expect(c.events.filter((e) => e.type === "ToolExecutionStarted")).toHaveLength(1)
    // The queue empties once the worker has reported (its row goes after the result).
    const left = await runSql(
      schema.url,
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ n: number }>`SELECT COUNT(*)::int AS n FROM tool_jobs`.pipe(
          Effect.map((rows) => rows[0]?.n ?? -1),
          Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("100 millis") }),
          Effect.timeout("10 seconds"),
          Effect.option
        )
      )
    )
    expect(left._tag).toBe("Some")
    c.close()
  }, 90_000)
})
