/**
 * Row 7: interrupt latency in the real in-process pipeline (test/support/pipeline.ts: writer, runners, BAML client,
 * in-process scripted endpoint): from the `interrupt` command to the endpoint seeing the provider HTTP request closed.
 */
import { Effect } from "effect"
import type { EndpointEvent, Script } from "../src/llm/offline.ts"
import { makePipeline } from "../test/support/pipeline.ts"
import { fixed, percentile, progress, showSpread, sortNumbers, spread } from "./lib/stats.ts"
import type { Options, Row } from "./types.ts"

type Closed = Extract<EndpointEvent, { type: "closed" }>

/** One run: `samples` turns, each interrupted once its first delta is on the tape; latencies in ms. */
const oneRun = (samples: number) => {
  // Long, slow turns: each would stream for 20 s if nobody stopped it.
  const script: Script = { turns: Array.from({ length: samples + 1 }, () => ({ text: "x".repeat(4_000), chunkChars: 4, delayMs: 20 })) }
  return Effect.scoped(
    Effect.gen(function* () {
      const p = yield* makePipeline(script)
      const session = yield* p.create()
      const out: Array<{ close: number; ack: number }> = []
      for (let i = 0; i <= samples; i++) {
        const ack = yield* p.submit(session, { type: "send_message", text: `go ${i}` })
        const turn = ack.events.find((e) => e.type === "TurnStarted")
        if (turn?.type !== "TurnStarted") return yield* Effect.dieMessage("send_message started no turn")
        const turnId = turn.turnId
        yield* p.waitFor(session, (tape) => tape.some((e) => e.type === "AssistantDelta" && e.turnId === turnId))
        const t0 = performance.now()
        yield* p.submit(session, { type: "interrupt", reason: "bench" })
        const acked = performance.now()
        const closed = yield* p.endpoint.waitFor((e): e is Closed => e.type === "closed" && e.turnKey === turnId)
        // The first turn warms up the path; it is not counted.
        if (i > 0) out.push({ close: closed.at - t0, ack: acked - t0 })
      }
      return out
    })
  )
}

export const run = async (opts: Options): Promise<Array<Row>> => {
  const runs = 3
  const samples = opts.full ? 40 : 10
  const all: Array<number> = []
  const acks: Array<number> = []
  const p99s: Array<number> = []
  const p50s: Array<number> = []
  for (let r = 0; r < runs; r++) {
    progress(`row 7: run ${r + 1}/${runs} (${samples} interrupts)`)
    const out = await Effect.runPromise(oneRun(samples))
    const closes = sortNumbers(out.map((o) => o.close))
    p50s.push(percentile(closes, 50))
    p99s.push(percentile(closes, 99))
    all.push(...closes)
    acks.push(...out.map((o) => o.ack))
  }
  const pooled = sortNumbers(all)
  const p99 = spread(p99s)
  return [
    {
      id: "7",
      name: "interrupt latency: command → provider HTTP request closed at the endpoint (in-process pipeline)",
      figure:
        `p50 ${showSpread(spread(p50s), fixed(1), " ms")}, p99 ${showSpread(p99, fixed(1), " ms")} per run of ${samples}; ` +
        `pooled p99 ${fixed(1)(percentile(pooled, 99))} ms, max ${fixed(1)(pooled[pooled.length - 1] ?? Number.NaN)} ms; ack after ${fixed(1)(percentile(sortNumbers(acks), 50))} ms (p50)`,
      target: "p99 ≤ 50 ms",
      met: p99.median <= 50,
      detail: { all, acks }
    }
  ]
}
