/**
 * Row 10 (issue 14): a long session under the context budget. The scripted model (8,000-token budget, usage counted
 * by a real tokenizer as a provider reports it) plays a session of up to 1,000 messages through the real pipeline;
 * per window of the session: the prompt the endpoint received (tokens) and the time from a message to its reply
 * completing. Flat in session length is the target: compaction keeps both from growing with the tape.
 */
import { Effect } from "effect"
import type { Envelope } from "../src/domain/Event.ts"
import type { EndpointEvent, Script } from "../src/llm/offline.ts"
import { withPipeline } from "../src/testing.ts"
import { fixed, progress, showSpread, spread } from "./lib/stats.ts"
import type { Options, Row } from "./types.ts"

const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i % 11}w${i}`).join(" ")

type Request = Extract<EndpointEvent, { type: "request" }>

/** The per-turn figures of one session of `turns` exchanges (2 × turns messages). */
const session = (turns: number) => {
  const script: Script = { turns: Array.from({ length: turns }, (_, i) => ({ text: `Answer ${i}: ${words(40, "a")}`, chunkChars: 512, delayMs: 0 })) }
  return withPipeline(script, (p) =>
    Effect.gen(function* () {
      const id = yield* p.create()
      const costs: Array<number> = []
      for (let i = 0; i < turns; i++) {
        const t0 = performance.now()
        const ack = yield* p.submit(id, { type: "send_message", text: `Question ${i}: ${words(40, "q")}` })
        // Done when a reply completed after this message's append (looks only at the events after it).
        const done = (tape: ReadonlyArray<Envelope>) => {
          for (let k = tape.length - 1; k >= 0 && tape[k]!.seq > ack.head; k--) if (tape[k]!.type === "TurnCompleted") return true
          return false
        }
        yield* p.waitFor(id, done)
        costs.push(performance.now() - t0)
        if (i % 100 === 99) progress(`compact: ${i + 1} turns`)
      }
      const requests = p.endpoint.events().filter((e): e is Request => e.type === "request" && e.task === "turn")
      return { costs, prompts: requests.map((r) => r.promptTokens), compactions: p.endpoint.events().filter((e) => e.type === "request" && e.task === "summary").length }
    })
  )
}

export const run = async (o: Options): Promise<Array<Row>> => {
  const turns = o.full ? 500 : 250
  const r = await session(turns)
  const window = (xs: ReadonlyArray<number>, from: number, to: number) => spread(xs.slice(from, to))
  const early = Math.min(50, Math.floor(turns / 5))
  const promptEarly = window(r.prompts, early, early * 2)
  const promptLate = window(r.prompts, turns - early, turns)
  const costEarly = window(r.costs, early, early * 2)
  const costLate = window(r.costs, turns - early, turns)
  const maxPrompt = Math.max(...r.prompts)
  const promptRatio = promptLate.median / promptEarly.median
  const costRatio = costLate.median / costEarly.median
  return [
    {
      id: `10a (${turns * 2} msgs)`,
      name: "long session, prompt size: tokens the endpoint received per turn, messages 100–200 vs the last 100 (scripted, 8,000-token budget)",
      figure: `${showSpread(promptEarly, fixed(0))} → ${showSpread(promptLate, fixed(0))} tokens (×${promptRatio.toFixed(2)}); max ${maxPrompt}; ${r.compactions} compactions`,
      target: "flat: last ≤ 1.5× early, every prompt < 8,000",
      met: promptRatio <= 1.5 && maxPrompt < 8_000
    },
    {
      id: `10b (${turns * 2} msgs)`,
      name: "long session, per-turn cost: message → reply completed, messages 100–200 vs the last 100",
      figure: `${showSpread(costEarly, fixed(1), " ms")} → ${showSpread(costLate, fixed(1), " ms")} (×${costRatio.toFixed(2)})`,
      target: "flat: last ≤ 2× early",
      met: costRatio <= 2
    }
  ]
}
