/**
 * Recovery after kill -9 (issue 11, fault 3), with the real server process on SQLite: sessions mid-turn with queued
 * messages, the server killed at a random moment (seeded: TAPE_TEST_SEED replays a run), restarted on the same data.
 * Every session must settle — idle or awaiting approval, its last turn closed — with no model call left unheard.
 */
import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import type { Envelope } from "../src/domain/Event.ts"
import { phaseOf } from "../src/domain/projections/ui.ts"
import { fold } from "../src/domain/state.ts"
import { Client, exportTape, startServer, tempDir, writeScript } from "./support/server.ts"
import { seededRandom } from "./support/random.ts"

const ROUNDS = 3
const SESSIONS = 6

/** The turns of a tape that never got a closing event. */
const openTurns = (tape: ReadonlyArray<Envelope>): Array<string> => {
  const open = new Set<string>()
  for (const e of tape) {
    if (e.type === "TurnStarted") open.add(e.turnId)
    if (e.type === "TurnCompleted" || e.type === "TurnInterrupted" || e.type === "TurnFailed") open.delete(e.turnId)
  }
  return [...open]
}

describe("recovery after kill -9 at random moments", () => {
  test(`${ROUNDS} rounds of ${SESSIONS} sessions: every session settles with its last turn closed`, async () => {
    const seed = Number(process.env.TAPE_TEST_SEED ?? "") || 20261201
    const random = seededRandom(seed)
    console.log(`recovery test seed: ${seed} (TAPE_TEST_SEED=${seed} replays it)`)
    const dir = tempDir("recovery")
    // Slow replies (about a second each), every third asking for an eval that waits for approval.
    const turns = Array.from({ length: 400 }, (_, i) =>
      i % 3 === 2 ? { text: "let me check", toolCalls: [{ tool: "eval", args: { code: `${i}+1` } }], delayMs: 10 } : { text: "y".repeat(120), chunkChars: 3, delayMs: 25 }
    )
    const env = { TAPE_STORE: "sqlite", TAPE_DATA: join(dir, "data"), LLM_SCRIPT: writeScript(dir, { turns }) }
    const sessions: Array<string> = []
    let kills = 0
    let checked = 0
    for (let round = 0; round < ROUNDS; round++) {
      const server = await startServer(env)
      const c = await Client.connect(server.port)
      while (sessions.length < SESSIONS * (round + 1)) sessions.push(await c.hello(null))
      for (const session of sessions.slice(-SESSIONS)) {
        c.session = session
        await c.command({ type: "send_message", text: `hello ${round}` }, session)
      }
      // While the replies stream: follow-ups that are queued, then the kill at a random moment.
      await Bun.sleep(Math.floor(random() * 300))
      for (const session of sessions) c.send({ type: "command", id: `q-${session}-${round}`, session, command: { type: "send_message", text: `and then ${round}` } })
      await Bun.sleep(Math.floor(random() * 700))
      await server.stop("SIGKILL")
      kills++
    }
    // Restart on the same data: recovery closes what the kill left open, and any turn it starts is run.
    const server = await startServer(env)
    const settled = async (session: string) => {
      const deadline = Date.now() + 60_000
      for (;;) {
        const tape = await exportTape(server.port, session)
        const state = fold(session, tape)
        const phase = phaseOf(state)
        if (phase === "idle" || phase === "awaiting_approval") return { session, phase, open: openTurns(tape), queued: state.messages.queue.length }
        if (Date.now() > deadline) return { session, phase, open: openTurns(tape), queued: state.messages.queue.length }
        await Bun.sleep(200)
      }
    }
    const results = await Promise.all(sessions.map(settled))
    checked = results.length
    console.log(`recovery: ${ROUNDS} rounds, ${kills} kills, ${checked} sessions checked`)
    for (const r of results) {
      expect(r).toMatchObject({ phase: expect.stringMatching(/^(idle|awaiting_approval)$/), open: [] })
      // Queued messages wait only behind a pending approval; an idle session has none left.
      if (r.phase === "idle") expect(r.queued).toBe(0)
    }
    await server.stop()
  }, 240_000)
})
