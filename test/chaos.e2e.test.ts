/**
 * The chaos test of issue 11: three servers and two tool workers on one PostgreSQL schema, driven by seeded random
 * clients while processes are killed (-9), notifications are dropped (deaf servers), the store is cut off from one
 * process for a while (a TCP proxy) and the provider stalls or floods. Then every tape is checked: turns closed, every
 * acknowledged command on the tape once, gapless, no tool call run twice or without its start, the strict fold, no
 * provider call left open, no refusal only a stale state explains, and every client and server of a session holding the
 * same bytes. CHAOS_SEED=<n> replays a plan (timing still varies); skipped, saying why, without DATABASE_URL.
 */
import { afterAll, expect, test } from "bun:test"
import { rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Schema } from "effect"
import { DB_NOW_MS } from "../src/cluster/Leases.ts"
import { foldStrict } from "../src/domain/admissible.ts"
import { type Envelope, JsonObject } from "../src/domain/Event.ts"
import { phaseOf } from "../src/domain/projections/ui.ts"
import { fold, isBusy } from "../src/domain/state.ts"
import { type ChaosEndpoint, type ChaosKind, startChaosEndpoint, writeChaosScript } from "./support/chaosModel.ts"
import { databaseUrl, freshSchema, runSql, pgSuite, type TestSchema } from "./support/pg.ts"
import { ROOT, type Spawned, spawnUntil } from "./support/process.ts"
import { picker, seededRandom } from "./support/random.ts"
import { Client, exportTape, startServer, tempDir } from "./support/server.ts"
import { startTcpProxy, type TcpProxy } from "./support/tcpProxy.ts"

const SEED = Number(process.env.CHAOS_SEED ?? "") || 20261107
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? "") || 90
/** Rounds stop early past this, whatever ROUNDS says (the whole test stays well under two minutes on two cores). */
const ROUNDS_BUDGET_MS = 40_000
/** How long the sessions may take to settle once the faults stop. */
const SETTLE_MS = 40_000
const SESSIONS = 8
const WATCHERS_PER_SESSION = 2
const LEASE_MS = "800"

/**
 * The provider's bounds (issue 11, finding 5): a stall ends by itself in TurnFailed (no bytes for
 * TAPE_PROVIDER_IDLE_MS), a flood at TAPE_MAX_REPLY_BYTES.
 */
const IDLE_MS = 1_500
const MAX_REPLY_BYTES = 256 * 1024

/** What each message asks the endpoint for (processes playing a script play their script instead). */
const MESSAGE_KINDS: Readonly<Record<ChaosKind, number>> = {
  text: 18,
  slow: 12,
  eval: 10,
  spin: 6,
  http: 16,
  slowhttp: 6,
  auto: 6,
  stall: 12,
  flood: 4,
  fail: 5
}

/** Refusal codes that are never right here: a fault of the server (internal), or a state behind the tape. */
const NEVER_RIGHT = new Set(["internal", "unknown_call", "unknown_session"])

const TOOLS = new Set(["eval", "http_get", "list_files"])
const isJsonObject = Schema.is(JsonObject)
/** The strict fold's tool check: the tools this test's models call, with any object of args. */
const checkTool = (tool: string, args: unknown) =>
  TOOLS.has(tool) && isJsonObject(args) ? { ok: true as const, args, policy: "ask" as const } : { ok: false as const, error: `${tool} is not a tool of this test` }

type Role = "server" | "worker"

/** One place in the cluster: a process (replaced when killed), always behind its own proxy to PostgreSQL. */
interface Slot {
  readonly role: Role
  readonly index: number
  readonly proxy: TcpProxy
  proc: Spawned["proc"] | null
  output: () => string
  port: number
  deaf: boolean
  model: "script" | "endpoint"
  /** Set from the kill until the replacement is ready. */
  starting: Promise<void> | null
  /** The process we killed on purpose (any other exit is a crash). */
  killed: Set<Spawned["proc"]>
}

/** What an acknowledged command must have left on the tape. */
type Expect =
  | { readonly kind: "message"; readonly text: string }
  | { readonly kind: "approve"; readonly callId: string }
  | { readonly kind: "reject"; readonly callId: string; readonly reason: string }
  | { readonly kind: "interrupt"; readonly reason: string }

interface Acked {
  readonly session: string
  readonly seq: number
  readonly expect: Expect
}

/** One client of one session: reconnects (to any live server) with the last seq it has, and keeps what it saw. */
class Watcher {
  conn: Client | null = null
  prior: Array<Envelope> = []
  connecting = false
  constructor(
    readonly session: string,
    readonly sessionIndex: number
  ) {}
  events(): Array<Envelope> {
    return this.conn === null ? this.prior : [...this.prior, ...this.conn.events]
  }
  /** Connected, and its live feed has not ended with an error (a store error ends it; the client says hello again). */
  alive(): boolean {
    return this.conn !== null && this.conn.closed === null && !this.conn.frames.some((f) => f.type === "error")
  }
}

const gapless = (tape: ReadonlyArray<Envelope>) => tape.every((e, i) => e.seq === i + 1)

pgSuite("chaos on PostgreSQL: 3 servers, 2 workers, kills, deaf servers, store outages, stalls and floods", () => {
  let schema: TestSchema | undefined
  let endpoint: ChaosEndpoint | undefined
  const slots: Array<Slot> = []
  /** Scripts, process logs and tapes; kept when the test fails, for its diagnosis. */
  const dir = tempDir("chaos")
  let passed = false

  afterAll(async () => {
    for (const s of slots) if (s.proc !== null && s.proc.exitCode === null) s.proc.kill("SIGKILL")
    await Promise.all(slots.map((s) => s.proxy.stop()))
    await endpoint?.stop()
    await schema?.drop()
    if (passed) rmSync(dir, { recursive: true, force: true })
  })

  test("every session ends with its turns closed, every ack on the tape once, no call run twice, one tape for all", async () => {
    const started = Date.now()
    const random = seededRandom(SEED)
    const pick = picker(random)
    console.log(`chaos seed: ${SEED} (CHAOS_SEED=${SEED} replays its plan; CHAOS_ROUNDS=${ROUNDS})`)
    schema = await freshSchema(databaseUrl!)
    endpoint = startChaosEndpoint()
    const model = endpoint
    const pg = new URL(schema.url)
    const viaProxy = (proxy: TcpProxy) => {
      const u = new URL(schema!.url)
      u.port = String(proxy.port)
      return u.toString()
    }
    const base: Record<string, string> = {
      TAPE_STORE: "postgres",
      TAPE_TOOL_WORKERS: "external",
      TAPE_LEASE_MS: LEASE_MS,
      TAPE_COMMANDS_PER_SECOND: "1000",
      TAPE_HTTP_ALLOW: model.allow,
      TAPE_WORKSPACE: dir,
      BAML_LOG: "warn",
      TAPE_PROVIDER_IDLE_MS: String(IDLE_MS),
      TAPE_MAX_REPLY_BYTES: String(MAX_REPLY_BYTES)
    }
    let spawns = 0
    /** Every process's output, kept for a failure's diagnosis. */
    const logs: Array<{ readonly name: string; readonly output: () => string }> = []
    const crashes: Array<string> = []

    const spawn = async (slot: Slot) => {
      const n = ++spawns
      const llm =
        slot.model === "script"
          ? { LLM_SCRIPT: writeChaosScript(dir, n, model.hitBase, seededRandom(SEED + n)) }
          : { LLM_BASE_URL: model.baseUrl, LLM_MODEL: "chaos" }
      const env = { ...base, DATABASE_URL: viaProxy(slot.proxy), ...llm }
      if (slot.role === "server") {
        const s = await startServer(env, slot.deaf ? "test/support/deaf-server.ts" : "src/main.ts")
        slot.proc = s.proc
        slot.output = s.output
        slot.port = s.port
      } else {
        const w = await spawnUntil([process.execPath, join(ROOT, "src/worker.ts")], { ...process.env, ...env }, /worker ready/)
        slot.proc = w.proc
        slot.output = w.output
      }
      const proc = slot.proc
      logs.push({ name: `${n}-${slot.role}${slot.index}${slot.deaf ? "-deaf" : ""}-${slot.model}`, output: slot.output })
      void proc.exited.then((code) => {
        if (!slot.killed.has(proc)) crashes.push(`${slot.role} ${slot.index} exited by itself (${code}):\n${slot.output().slice(-3000)}`)
      })
    }

    const newSlot = async (role: Role, index: number, m: Slot["model"]): Promise<Slot> => ({
      role,
      index,
      proxy: await startTcpProxy(Number(pg.port || "5432"), pg.hostname),
      proc: null,
      output: () => "",
      port: 0,
      deaf: false,
      model: m,
      starting: null,
      killed: new Set()
    })
    slots.push(
      await newSlot("server", 0, "script"),
      await newSlot("server", 1, "endpoint"),
      await newSlot("server", 2, "endpoint"),
      await newSlot("worker", 0, "endpoint"),
      await newSlot("worker", 1, "script")
    )
    // The first runs the migrations alone; then the others at once.
    await spawn(slots[0]!)
    await Promise.all(slots.slice(1).map(spawn))
    const servers = () => slots.filter((s) => s.role === "server")
    const liveServers = () => servers().filter((s) => s.starting === null && s.proc !== null && s.proc.exitCode === null)

    // Sessions, each watched by clients on random servers.
    const sessions: Array<string> = []
    const watchers: Array<Watcher> = []
    {
      const c = await Client.connect(slots[0]!.port)
      for (let k = 0; k < SESSIONS; k++) sessions.push(await c.hello(null))
      c.close()
    }
    const connect = async (w: Watcher) => {
      const live = liveServers()
      if (live.length === 0 || w.connecting) return
      w.connecting = true
      const slot = pick.one(live)
      w.prior = w.events()
      w.conn?.close()
      w.conn = null
      let c: Client | undefined
      try {
        c = await Client.connect(slot.port)
        await c.hello(w.session, w.prior.length)
        w.conn = c
      } catch {
        c?.close()
      } finally {
        w.connecting = false
      }
    }
    for (let k = 0; k < SESSIONS; k++) for (let i = 0; i < WATCHERS_PER_SESSION; i++) watchers.push(new Watcher(sessions[k]!, k))
    await Promise.all(watchers.map(connect))

    // Figures.
    const acked: Array<Acked> = []
    const nacks: Record<string, number> = {}
    /** Refusals no command of this test can deserve: its sessions exist, and it names only calls it saw requested. */
    const wrongNacks: Array<string> = []
    let unanswered = 0
    let commands = 0
    let serverKills = 0
    let workerKills = 0
    let deafStarts = 0
    let outages = 0
    let messages = 0
    const inFlight = new Set<Promise<void>>()
    const background = new Set<Promise<void>>()
    const track = (p: Promise<void>, set: Set<Promise<void>>) => {
      set.add(p)
      void p.finally(() => set.delete(p))
    }

    const fire = (w: Watcher, command: Record<string, unknown>, expect: Expect) => {
      const c = w.conn
      if (c === null || !w.alive()) return
      commands++
      track(
        c.command(command, w.session).then(
          (reply) => {
            if (reply.type === "ack") acked.push({ session: w.session, seq: reply.seq, expect })
            else {
              nacks[reply.error.code] = (nacks[reply.error.code] ?? 0) + 1
              if (NEVER_RIGHT.has(reply.error.code)) wrongNacks.push(`${w.session} ${JSON.stringify(command)}: ${reply.error.code}: ${reply.error.message}`)
            }
          },
          () => {
            unanswered++
          }
        ),
        inFlight
      )
    }

    const act = (w: Watcher, round: number) => {
      const state = fold(w.session, w.events())
      const pending = [...state.commands.pending]
      const busy = isBusy(state)
      const action = pick.weighted({
        send: 4,
        sendInterrupting: busy ? 1.5 : 0,
        approve: pending.length > 0 ? 4 : 0,
        reject: pending.length > 0 ? 1.2 : 0,
        interrupt: busy ? 1.2 : 0.1
      })
      const n = ++messages
      switch (action) {
        case "send":
        case "sendInterrupting": {
          const kind = pick.weighted(MESSAGE_KINDS)
          const text = `chaos-${kind}-s${w.sessionIndex}n${n} (round ${round})`
          fire(w, { type: "send_message", text, mode: action === "send" ? "queue" : "interrupt" }, { kind: "message", text })
          return
        }
        case "approve": {
          const callId = pick.one(pending)
          fire(w, { type: "approve", callId }, { kind: "approve", callId })
          return
        }
        case "reject": {
          const callId = pick.one(pending)
          const reason = `chaos rejects ${n}`
          fire(w, { type: "reject", callId, reason }, { kind: "reject", callId, reason })
          return
        }
        case "interrupt": {
          const reason = `chaos stops ${n}`
          fire(w, { type: "interrupt", reason }, { kind: "interrupt", reason })
          return
        }
        default: {
          const _exhaustive: never = action
          return _exhaustive
        }
      }
    }

    /** Kills the slot's process with SIGKILL and starts a replacement in the background (once its proxy is up). */
    const kill = (slot: Slot) => {
      const proc = slot.proc
      if (proc === null) return
      slot.killed.add(proc)
      proc.kill("SIGKILL")
      if (slot.role === "server") {
        serverKills++
        slot.deaf = pick.chance(0.4)
        if (slot.deaf) deafStarts++
      } else workerKills++
      slot.model = pick.chance(0.5) ? "script" : "endpoint"
      slot.starting = (async () => {
        await proc.exited
        await slot.proxy.whenUp()
        await spawn(slot)
      })().finally(() => {
        slot.starting = null
      })
      track(slot.starting, background)
    }

    type Fault = "killServer" | "killWorker" | "outage" | "none"
    // The plan: a fault in about a quarter of the first 80% of the rounds, each kind at least twice; the last rounds
    // are calm, so what the faults left behind (a provider call nobody stops, a turn nobody runs) is still there to see.
    const faulty = Math.max(1, Math.floor(ROUNDS * 0.8))
    const plan: Array<Fault> = Array.from({ length: ROUNDS }, (_, r) =>
      r < faulty ? pick.weighted({ killServer: 9, killWorker: 6, outage: 7, none: 78 }) : "none"
    )
    for (const f of ["killServer", "killWorker", "outage"] as const) {
      while (plan.filter((p) => p === f).length < 2) plan[pick.int(faulty)] = f
    }

    let rounds = 0
    for (let round = 0; round < ROUNDS && Date.now() - started < ROUNDS_BUDGET_MS; round++) {
      rounds++
      for (const w of watchers) if (!w.alive()) track(connect(w), background)
      const live = watchers.filter((w) => w.alive())
      const actions = 1 + pick.int(4)
      for (let a = 0; a < actions && live.length > 0; a++) act(pick.one(live), round)
      switch (plan[round]) {
        case "killServer": {
          const candidates = liveServers()
          if (candidates.length >= 2) kill(pick.one(candidates))
          break
        }
        case "killWorker": {
          const candidates = slots.filter((s) => s.role === "worker" && s.starting === null)
          if (candidates.length > 0) kill(pick.one(candidates))
          break
        }
        case "outage": {
          const candidates = slots.filter((s) => s.starting === null && !s.proxy.down())
          if (candidates.length > 0) {
            outages++
            track(pick.one(candidates).proxy.cut(1_000 + pick.int(2_000)), background)
          }
          break
        }
        default:
          break
      }
      // The pace of the clients: random, so actions land at every point of a turn or call.
      await Bun.sleep(100 + pick.int(400))
    }
    const roundsMs = Date.now() - started

    // The faults stop: every replacement started, every outage over, every command answered.
    while (background.size > 0) await Promise.all([...background])
    await Promise.all([...inFlight])
    expect(crashes).toEqual([])
    expect(wrongNacks).toEqual([])
    for (const s of slots) expect({ slot: `${s.role} ${s.index}`, running: s.proc !== null && s.proc.exitCode === null }).toEqual({ slot: `${s.role} ${s.index}`, running: true })

    // Settle: every session idle or awaiting approval, and no provider request left open. A provider that stalls ends
    // its turn by itself (TAPE_PROVIDER_IDLE_MS).
    /** The next frame any client receives, or a provider request opening or closing, or `ms` (nothing changed). */
    const nextChange = (ms: number) =>
      Promise.race([
        model.nextChange(ms),
        ...watchers.flatMap((w) => {
          const c = w.conn
          if (c === null) return []
          const seen = c.frames.length
          return [c.until(() => c.frames.length > seen, "a frame", ms).catch(() => undefined)]
        })
      ])
    const tapeOf = (session: string) => exportTape(pick.one(liveServers()).port, session)
    const settleDeadline = Date.now() + SETTLE_MS
    let unsettled: Array<{ session: string; phase: string; tail: Array<string> }> = []
    for (;;) {
      for (const w of watchers) if (!w.alive()) await connect(w)
      unsettled = []
      for (const [k, session] of sessions.entries()) {
        const tape = await tapeOf(session)
        const state = fold(session, tape)
        const phase = phaseOf(state)
        if (phase === "idle" || phase === "awaiting_approval") continue
        unsettled.push({ session, phase, tail: tape.slice(-4).map((e) => `${e.seq} ${e.type} ${e.by}`) })
      }
      if (unsettled.length === 0 && model.open().length === 0) break
      if (Date.now() > settleDeadline) break
      await nextChange(1_000)
    }
    await Promise.all([...inFlight])
    // Every process's output, for the diagnosis of whatever fails below.
    for (const l of logs) writeFileSync(join(dir, `${l.name}.log`), l.output())
    console.log(`chaos: process logs, scripts and tapes in ${dir} (removed if the test passes)`)
    if (unsettled.length > 0) {
      // What the cluster holds for them: the queue and the leases (the cause is usually there).
      const rows = await runSql(
        schema.url,
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.all([
            sql`SELECT session, call_id, status, owner FROM tool_jobs`,
            sql`SELECT kind, session, key, owner, expires_at - ${sql.literal(DB_NOW_MS)} AS left_ms FROM leases`
          ])
        )
      )
      console.log(`chaos: unsettled; tool_jobs ${JSON.stringify(rows[0])}; leases ${JSON.stringify(rows[1])}`)
    }
    expect({ unsettled, openProviderRequests: model.open() }).toEqual({ unsettled: [], openProviderRequests: [] })

    // Checks, per session: the tape as each server exports it, and as each of its clients saw it.
    const tapes = new Map<string, Array<Envelope>>()
    for (const session of sessions) {
      const exports = await Promise.all(liveServers().map((s) => exportTape(s.port, session)))
      const tape = exports[0]!
      for (const other of exports) expect(JSON.stringify(other)).toBe(JSON.stringify(tape))
      tapes.set(session, tape)
      writeFileSync(join(dir, `tape-${session}.jsonl`), tape.map((e) => JSON.stringify(e)).join("\n"))
      expect(gapless(tape)).toBe(true)
      const strict = foldStrict(session, tape, { checkTool })
      expect("refused" in strict ? strict.refused : null).toBeNull()
      // Every turn closed exactly once.
      const closes = new Map<string, number>()
      for (const e of tape) {
        if (e.type === "TurnStarted") closes.set(e.turnId, closes.get(e.turnId) ?? 0)
        if (e.type === "TurnCompleted" || e.type === "TurnInterrupted" || e.type === "TurnFailed") closes.set(e.turnId, (closes.get(e.turnId) ?? 0) + 1)
      }
      expect([...closes].filter(([, n]) => n !== 1)).toEqual([])
      // No call started twice; every call that started has a result or a cancellation.
      const starts = new Map<string, number>()
      const ends = new Set<string>()
      for (const e of tape) {
        if (e.type === "ToolExecutionStarted") starts.set(e.callId, (starts.get(e.callId) ?? 0) + 1)
        if (e.type === "ToolExecutionSucceeded" || e.type === "ToolExecutionFailed" || e.type === "ToolExecutionCancelled") ends.add(e.callId)
      }
      expect([...starts].filter(([, n]) => n > 1)).toEqual([])
      {
        // No reply past the cap completed (a flood ends failed, with the text so far).
        const chars = new Map<string, number>()
        for (const e of tape) if (e.type === "AssistantDelta") chars.set(e.turnId, (chars.get(e.turnId) ?? 0) + e.text.length)
        const completed = new Set(tape.flatMap((e) => (e.type === "TurnCompleted" ? [e.turnId] : [])))
        expect([...chars].filter(([turnId, n]) => n > MAX_REPLY_BYTES && completed.has(turnId))).toEqual([])
      }
      expect([...starts.keys()].filter((id) => !ends.has(id))).toEqual([])
    }

    // Every acknowledged command is on its tape exactly once, at the seq its ack named.
    const ackProblems: Array<string> = []
    for (const a of acked) {
      const tape = tapes.get(a.session)!
      const at = tape[a.seq - 1]
      const x = a.expect
      const found =
        x.kind === "message"
          ? tape.filter((e) => (e.type === "UserMessageAdded" || e.type === "UserMessageQueued") && e.text === x.text)
          : x.kind === "approve"
            ? tape.filter((e) => e.type === "ToolCallApproved" && e.callId === x.callId && e.by.startsWith("user:"))
            : x.kind === "reject"
              ? tape.filter((e) => e.type === "ToolCallRejected" && e.callId === x.callId && e.reason === x.reason)
              : tape.filter((e) => e.type === "InterruptRequested" && e.reason === x.reason)
      const e = found[0]
      const problem =
        found.length !== 1
          ? `found ${found.length} times`
          : at === undefined
            ? `ack seq ${a.seq} is past the tape's end (${tape.length})`
            : e!.type === "UserMessageAdded"
              ? a.seq === e!.seq + 1 && (at.type === "TurnStarted" || at.type === "CompactionStarted") ? null : `ack seq ${a.seq}, message at ${e!.seq}`
              : e!.type === "UserMessageQueued" || e!.type === "ToolCallApproved"
                ? a.seq === e!.seq ? null : `ack seq ${a.seq}, event at ${e!.seq}`
                : a.seq >= e!.seq && tape.slice(e!.seq - 1, a.seq).every((y) => y.at === e!.at) ? null : `ack seq ${a.seq} is not in the batch of ${e!.seq}`
      if (problem !== null) ackProblems.push(`${a.session} ${JSON.stringify(x)}: ${problem}`)
    }
    expect(ackProblems).toEqual([])

    // Every client of a session ends with the same bytes as the exported tape.
    for (const w of watchers) {
      const tape = tapes.get(w.session)!
      if (w.conn !== null) await w.conn.until(() => w.events().length >= tape.length, `client of ${w.session} to reach ${tape.length}`, 15_000)
      expect(JSON.stringify(w.events())).toBe(JSON.stringify(tape))
    }

    // No tool call ran twice, or ran without its ToolExecutionStarted: the http_get target counts every request of
    // each URL. A URL is one call's, except that the scripted model replays an entry for the first turns of two sessions
    // (they have the same turn id, its retry key: issue 11, finding 7), so per URL: succeeded ≤ requests ≤ started.
    const calls = new Map<string, { started: number; succeeded: number }>()
    for (const tape of tapes.values()) {
      const urls = new Map<string, string>()
      for (const e of tape) {
        if (e.type === "ToolCallRequested" && e.tool === "http_get" && typeof e.args.url === "string") urls.set(e.callId, new URL(e.args.url).pathname)
        const path = "callId" in e ? urls.get(e.callId) : undefined
        if (path === undefined) continue
        const c = calls.get(path) ?? { started: 0, succeeded: 0 }
        calls.set(path, c)
        if (e.type === "ToolExecutionStarted") c.started++
        if (e.type === "ToolExecutionSucceeded") c.succeeded++
      }
    }
    const hitProblems: Array<string> = []
    for (const [path, n] of model.hits) {
      const started = calls.get(path)?.started ?? 0
      if (n > started) hitProblems.push(`${path} was requested ${n} times by ${started} started call(s)`)
    }
    for (const [path, c] of calls) if ((model.hits.get(path) ?? 0) < c.succeeded) hitProblems.push(`${path}: ${c.succeeded} call(s) succeeded with ${model.hits.get(path) ?? 0} request(s)`)
    expect(hitProblems).toEqual([])

    const events = [...tapes.values()].reduce((n, t) => n + t.length, 0)
    const count = (type: string) => [...tapes.values()].reduce((n, t) => n + t.filter((e) => e.type === type).length, 0)
    console.log(
      [
        `chaos: seed ${SEED}, ${rounds} rounds in ${roundsMs} ms, settled after ${Date.now() - started} ms`,
        `  faults: ${serverKills} server kills (${deafStarts} replaced by deaf servers), ${workerKills} worker kills, ${outages} store outages (${slots.reduce((n, s) => n + s.proxy.refused(), 0)} connections cut or refused), ${spawns} processes started`,
        `  clients: ${commands} commands, ${acked.length} acks checked, nacks ${JSON.stringify(nacks)}, ${unanswered} unanswered (server killed)`,
        `  tapes: ${sessions.length} sessions, ${events} events checked, ${count("TurnStarted")} turns (${count("TurnCompleted")} completed, ${count("TurnInterrupted")} interrupted, ${count("TurnFailed")} failed), ${count("ToolExecutionStarted")} calls started, ${model.hits.size} http_get targets hit`,
        `  provider: ${JSON.stringify(model.served())}`
      ].join("\n")
    )
    for (const w of watchers) w.conn?.close()
    passed = true
  }, 180_000)
})
