/**
 * Scale-out on PostgreSQL (issue 6), with real processes: three servers and two tool workers on one database
 * (a fresh schema). Skipped, saying why, when DATABASE_URL is not set.
 */
import { afterAll, beforeAll, expect, test } from "bun:test"
import { join } from "node:path"
import type { Envelope } from "../src/domain/Event.ts"
import { databaseUrl, freshSchema, runSql, pgSuite, type TestSchema } from "./support/pg.ts"
import { ROOT, type Spawned, spawnUntil } from "./support/process.ts"
import { Client, exportTape, type ServerProcess, startServer, tempDir, writeScript } from "./support/server.ts"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

const gapless = (events: ReadonlyArray<{ seq: number }>) => events.every((e, i) => e.seq === i + 1)

const startWorker = (env: Record<string, string>): Promise<Spawned> =>
  spawnUntil([process.execPath, join(ROOT, "src/worker.ts")], { ...process.env, BAML_LOG: "warn", ...env }, /worker ready/)

pgSuite("cluster on PostgreSQL: 3 servers, 2 workers", () => {
  let schema: TestSchema
  let env: Record<string, string>
  const servers: Array<ServerProcess> = []
  const workers: Array<Spawned> = []

  beforeAll(async () => {
    schema = await freshSchema(databaseUrl!)
    env = { TAPE_STORE: "postgres", DATABASE_URL: schema.url, TAPE_TOOL_WORKERS: "external", TAPE_COMMANDS_PER_SECOND: "1000" }
    // Start one first so the migrations run once, then the others.
    servers.push(await startServer(env))
    servers.push(...(await Promise.all([startServer(env), startServer(env)])))
    workers.push(...(await Promise.all([startWorker(env), startWorker(env)])))
  }, 60_000)

  afterAll(async () => {
    for (const p of [...servers.map((s) => s.proc), ...workers.map((w) => w.proc)]) if (p.exitCode === null) p.kill("SIGKILL")
    await schema?.drop()
  })

  test("clients of one session on different servers see identical tapes; a worker runs the approved call once", async () => {
    const [a, b, c] = await Promise.all(servers.map((s) => Client.connect(s.port)))
    const session = await a!.hello(null)
    await b!.hello(session)
    await c!.hello(session)
    expect((await a!.command({ type: "send_message", text: "what is 6*7?" })).type).toBe("ack")
    await b!.until(() => b!.has((e) => e.type === "ToolCallRequested"), "the eval call on server B")
    const call = b!.events.find((e) => e.type === "ToolCallRequested")
    if (call?.type !== "ToolCallRequested") throw new Error("no call")
    expect((await b!.command({ type: "approve", callId: call.callId })).type).toBe("ack")
    const answered = (x: Client) => x.events.filter((e) => e.type === "TurnCompleted").length === 2
    for (const x of [a!, b!, c!]) await x.until(() => answered(x), "the answer after the tool result")
    await Promise.all([a!, b!, c!].map((x) => x.until(() => x.events.length === a!.events.length, "the same length")))
    expect(b!.events).toEqual(a!.events)
    expect(c!.events).toEqual(a!.events)
    expect(gapless(a!.events)).toBe(true)
    expect(a!.events.filter((e) => e.type === "ToolExecutionStarted")).toHaveLength(1)
    const out = a!.events.find((e) => e.type === "ToolExecutionSucceeded")
    expect(out?.type === "ToolExecutionSucceeded" && out.output).toContain("42")
    for (const x of [a!, b!, c!]) x.close()
  }, 60_000)

  test("1,000 commands from 10 clients over the three servers: a gapless tape with every acknowledged command exactly once", async () => {
    const first = await Client.connect(servers[0]!.port)
    const session = await first.hello(null)
    const clients = await Promise.all(Array.from({ length: 10 }, (_, i) => Client.connect(servers[i % 3]!.port)))
    await Promise.all(clients.map((c) => c.hello(session)))
    const acked: Array<string> = []
    const nacks: Array<string> = []
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 100; k++) {
          const text = `m-${i}-${k}`
          const reply = await c.command({ type: "send_message", text })
          if (reply.type === "ack") acked.push(text)
          else nacks.push(reply.error.message)
        }
      })
    )
    expect(nacks.slice(0, 3)).toEqual([])
    expect(acked.length).toBe(1_000)
    const tape = await exportTape(servers[1]!.port, session)
    expect(gapless(tape)).toBe(true)
    const texts = tape.flatMap((e) => (e.type === "UserMessageAdded" || e.type === "UserMessageQueued" ? [e.text] : []))
    const counts = new Map<string, number>()
    for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1)
    for (const t of acked) expect(counts.get(t)).toBe(1)
    expect(texts.length).toBe(1_000)
    for (const c of [first, ...clients]) c.close()
  }, 120_000)

  test("a server killed with SIGKILL mid-turn: another process closes the turn and the session goes on", async () => {
    const dir = tempDir("cluster-kill")
    const slow = await startServer({ ...env, LLM_SCRIPT: writeScript(dir, { turns: [{ text: "s".repeat(4000), chunkChars: 2, delayMs: 5 }] }) })
    const watcher = await Client.connect(servers[0]!.port)
    const c = await Client.connect(slow.port)
    const session = await c.hello(null)
    await watcher.hello(session)
    await c.command({ type: "send_message", text: "talk slowly" })
    await watcher.until(() => watcher.has((e) => e.type === "AssistantDelta"), "the turn streaming (seen via another server)")
    slow.proc.kill("SIGKILL")
    await watcher.until(() => watcher.has((e) => e.type === "TurnInterrupted"), "another process to close the turn", 30_000)
    const closed = watcher.events.find((e) => e.type === "TurnInterrupted")
    expect(closed?.type === "TurnInterrupted" && closed.reason).toBe("restart")
    expect((await watcher.command({ type: "send_message", text: "hello again" })).type).toBe("ack")
    await watcher.until(() => watcher.has((e) => e.type === "TurnCompleted"), "a new turn completing on a live server")
    expect(gapless(watcher.events)).toBe(true)
    watcher.close()
  }, 60_000)

  test("a worker killed mid-call: the call ends cancelled with outcome unknown and is never run again", async () => {
    const c = await Client.connect(servers[2]!.port)
    const session = await c.hello(null)
    await c.command({ type: "send_message", text: "run let i = 0; while (true) { i++ }" })
    await c.until(() => c.has((e) => e.type === "ToolCallRequested"), "the eval call")
    const call = c.events.find((e) => e.type === "ToolCallRequested")
    if (call?.type !== "ToolCallRequested") throw new Error("no call")
    await c.command({ type: "approve", callId: call.callId })
    await c.until(() => c.has((e) => e.type === "ToolExecutionStarted"), "a worker to start it")
    const owner = await runSql(schema.url, Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      return yield* sql<{ owner: string }>`SELECT owner FROM tool_jobs WHERE session = ${session} AND call_id = ${call.callId}`
    }))
    const pid = Number(owner[0]!.owner.split("-")[0])
    const worker = workers.find((w) => w.proc.pid === pid)
    expect(worker).toBeDefined()
    worker!.proc.kill("SIGKILL")
    await c.until(() => c.has((e) => e.type === "ToolExecutionCancelled"), "the call to be cancelled", 30_000)
    const cancelled = c.events.find((e) => e.type === "ToolExecutionCancelled")
    expect(cancelled?.type === "ToolExecutionCancelled" && cancelled.outcome).toBe("unknown")
    // Give any wrongful re-run time to show: another sweep of the reaper and the claim loop.
    await Bun.sleep(2_000)
    const tape = await exportTape(servers[0]!.port, session)
    expect(tape.filter((e: Envelope) => e.type === "ToolExecutionStarted")).toHaveLength(1)
    expect(gapless(tape)).toBe(true)
    c.close()
  }, 60_000)

  test("notifications dropped: clients on servers that never hear them still converge", async () => {
    const deaf = await Promise.all([startServer(env, "test/support/deaf-server.ts"), startServer(env, "test/support/deaf-server.ts")])
    const a = await Client.connect(deaf[0]!.port)
    const b = await Client.connect(deaf[1]!.port)
    const session = await a.hello(null)
    await b.hello(session)
    await a.command({ type: "send_message", text: "hello" })
    await b.until(() => b.has((e) => e.type === "TurnCompleted"), "the reply on the other server", 30_000)
    await a.until(() => a.events.length === b.events.length, "both at the same head")
    expect(b.events).toEqual(a.events)
    for (const d of deaf) d.proc.kill("SIGKILL")
  }, 60_000)
})
