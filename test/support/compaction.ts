/**
 * Test support for the compaction tests (issue 14): a message sent through the in-process pipeline and its reply
 * awaited; and, for the tests that kill a process mid-summary, a script whose summary takes minutes, a session driven
 * until a compaction starts, and a wait until every message has its completed reply.
 */
import { Effect } from "effect"
import type { Envelope } from "../../src/domain/Event.ts"
import { fold } from "../../src/domain/state.ts"
import type { Pipeline } from "../../src/testing.ts"
import { type Client, exportTape, writeScript } from "./server.ts"

/** Sends `text` to `session` and waits for the turn it starts to complete; answers the tape then. */
export const ask = (p: Pipeline, session: string, text: string) =>
  p.submit(session, { type: "send_message", text }).pipe(
    // waitFor calls this on every event: look at the newest only (a reply with no calls ends the loop).
    Effect.flatMap((ack) =>
      p.waitFor(session, (tape) => {
        const e = tape.at(-1)
        return e !== undefined && e.seq > ack.head && e.type === "TurnCompleted"
      })
    )
  )

export const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 9}w${i}`).join(" ")

/** Twenty long replies and a summary written a chunk per second (the kill comes while it is being written). */
export const slowSummaryScript = (dir: string) =>
  writeScript(dir, {
    turns: Array.from({ length: 20 }, (_, i) => ({ text: `Reply ${i}: ${words(120, "r")}`, chunkChars: 256, delayMs: 0 })),
    summaries: [{ text: "s".repeat(64 * 600), delayMs: 1_000 }]
  })

export const compacting = (tape: ReadonlyArray<Envelope>) => fold("t", tape).interrupts.compacting !== null

/** Sends messages (at most 10) until one starts a compaction; answers how many were sent. */
export const sendUntilCompacting = async (c: Client): Promise<number> => {
  let sent = 0
  while (sent < 10) {
    await c.command({ type: "send_message", text: `Message ${sent}: ${words(40, "m")}` })
    sent++
    await c.until(() => compacting(c.events) || c.events.filter((e) => e.type === "TurnCompleted").length === sent, "the turn completes or a compaction starts")
    if (compacting(c.events)) break
  }
  return sent
}

const completedReplies = (session: string, tape: ReadonlyArray<Envelope>) =>
  fold(session, tape).messages.items.filter((i) => i.kind === "assistant" && i.status === "completed").length

/** The session's tape once every one of `sent` messages has its completed reply (or after 60 s, as it is then). */
export const tapeOnceAnswered = async (port: number, session: string, sent: number): Promise<ReadonlyArray<Envelope>> => {
  const deadline = Date.now() + 60_000
  let tape = await exportTape(port, session)
  while (Date.now() < deadline && completedReplies(session, tape) < sent) {
    await Bun.sleep(200)
    tape = await exportTape(port, session)
  }
  return tape
}
