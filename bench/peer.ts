/**
 * Rows P1–P6 (issue 15): Agent Tape against the AI SDK peer (bench/peer-server.ts) and the floor, measured in the
 * same run by bench/e2e.ts, judged as ratios against the peer per round (median over rounds), and the side-by-side
 * table of every figure. Formatting only; the measuring is in e2e.ts.
 */
import type { Capacity, Kind, Paced, RunResult } from "./e2e.ts"
import { fixed, percentile, showSpread, sortNumbers, spread, type Spread } from "./lib/stats.ts"
import type { Row } from "./types.ts"

const p = (xs: ReadonlyArray<number>, q: number) => percentile(sortNumbers(xs), q)
/** Server CPU (process tree) per chunk the endpoint streamed, µs. */
const cpuPerChunk = (x: RunResult) => (x.cpuMs * 1000) / x.chunks
const sendToRequest = (x: RunResult) => p(x.sendToRequest, 50)
const p50 = (x: RunResult) => p(x.latencies, 50)
const p99 = (x: RunResult) => p(x.latencies, 99)

/** Median over rounds of one figure, per server. */
const per = (r: Paced, f: (x: RunResult) => number): Record<Kind, Spread> => ({
  ours: spread(r.results.ours.map(f)),
  peer: spread(r.results.peer.map(f)),
  floor: spread(r.results.floor.map(f))
})
/** ours / peer per round (rounds are interleaved, so round i of each ran side by side), median over rounds. */
const ratio = (r: Paced, f: (x: RunResult) => number): Spread => spread(r.results.ours.map((x, i) => f(x) / f(r.results.peer[i]!)))

const ms = (s: Spread) => showSpread(s, fixed(s.median < 10 ? 2 : 1), " ms")
const us = (s: Spread) => showSpread(s, fixed(0), " µs")
const times = (s: Spread) => `×${showSpread(s, fixed(2))}`
const wrong = (xs: ReadonlyArray<RunResult>) => xs.reduce((n, x) => n + x.wrong, 0)
const replies = (xs: ReadonlyArray<RunResult>) => xs.reduce((n, x) => n + x.replyMs.length + x.wrong, 0)
const correct = (xs: ReadonlyArray<RunResult>) => (wrong(xs) === 0 ? `yes (${replies(xs)} replies)` : `**NO: ${wrong(xs)} replies wrong** (${xs.flatMap((x) => x.wrongWhat)[0]})`)

export const peerRows = (results: ReadonlyArray<Paced>, caps: ReadonlyArray<Capacity>): Array<Row> => {
  const rows: Array<Row> = []
  const at = (k: number) => results.find((r) => r.k === k)

  // The side-by-side table.
  const lines = ["| K | measure | Agent Tape | AI SDK peer | floor | ours / peer |", "|---|---|---|---|---|---|"]
  for (const r of results) {
    const a = per(r, p50)
    const b = per(r, p99)
    const c = per(r, cpuPerChunk)
    const d = per(r, sendToRequest)
    lines.push(
      `| ${r.k} | chunk→client p50 / p99 | ${ms(a.ours)} / ${ms(b.ours)} | ${ms(a.peer)} / ${ms(b.peer)} | ${ms(a.floor)} / ${ms(b.floor)} | ${times(ratio(r, p50))} / ${times(ratio(r, p99))} |`,
      `| ${r.k} | server CPU per chunk (process tree) | ${us(c.ours)} | ${us(c.peer)} | ${us(c.floor)} | ${times(ratio(r, cpuPerChunk))} |`,
      `| ${r.k} | send_message → provider request (p50 of replies) | ${ms(d.ours)} | ${ms(d.peer)} | ${ms(d.floor)} | ${times(ratio(r, sendToRequest))} |`,
      `| ${r.k} | peak RSS (process tree) | ${r.peak.ours.toFixed(0)} MB | ${r.peak.peer.toFixed(0)} MB | ${r.peak.floor.toFixed(0)} MB | ×${(r.peak.ours / r.peak.peer).toFixed(2)} |`,
      `| ${r.k} | every chunk's text exactly once, in order | ${correct(r.results.ours)} | ${correct(r.results.peer)} | ${correct(r.results.floor)} | |`
    )
  }
  const capOf = (kind: Kind) => caps.find((c) => c.kind === kind)
  const showCap = (c: Capacity | undefined) =>
    c === undefined ? "not run" : `${c.held}${c.capped ? "+ (bench limit)" : ""} (probes: ${c.probes.map((x) => `${x.k}→${x.p99.toFixed(0)} ms${x.ok ? "" : " ✗"}`).join(", ")})`
  if (caps.length > 0) lines.push(`| max | capacity: largest K at p99 ≤ 50 ms | ${showCap(capOf("ours"))} | ${showCap(capOf("peer"))} | — | |`)
  const section = lines.join("\n")

  // P1: correctness, every server, every K.
  const bad = results.flatMap((r) => (["ours", "peer", "floor"] as const).filter((k) => wrong(r.results[k]) > 0).map((k) => `${k} at K=${r.k}`))
  rows.push({
    id: "P1",
    name: "correctness: every chunk's text exactly once, in order (ours, peer, floor; every K and round)",
    figure: bad.length === 0 ? `all replies exact (${results.map((r) => `K=${r.k}`).join(", ")})` : `wrong: ${bad.join(", ")}`,
    target: "every reply exact on every server",
    met: bad.length === 0,
    section
  })
  // P2: CPU per chunk ≤ the peer's at every K.
  for (const r of results) {
    const c = per(r, cpuPerChunk)
    const q = ratio(r, cpuPerChunk)
    rows.push({
      id: `P2 (K=${r.k})`,
      name: `server CPU per chunk (process tree, /proc), K=${r.k}, every delta stored before it is sent`,
      figure: `ours ${us(c.ours)}, peer ${us(c.peer)}, floor ${us(c.floor)}; ours / peer ${times(q)}`,
      target: "ours ≤ the peer's (ratio ≤ 1)",
      met: q.median <= 1
    })
  }
  const k100 = at(100)
  if (k100) {
    const q99 = ratio(k100, p99)
    const b = per(k100, p99)
    const s = ratio(k100, sendToRequest)
    const d = per(k100, sendToRequest)
    rows.push({
      id: "P3 (K=100)",
      name: "K=100: p99 chunk→client, send_message → provider request",
      figure: `p99 ours ${ms(b.ours)}, peer ${ms(b.peer)} (ours / peer ${times(q99)}); send→request ours ${ms(d.ours)}, peer ${ms(d.peer)} (${times(s)})`,
      target: "p99 ≤ 10 ms and ≤ the peer's; send→request ≤ 2 × the peer's",
      met: b.ours.median <= 10 && q99.median <= 1 && s.median <= 2
    })
    const rss = k100.peak.ours / k100.peak.peer
    rows.push({
      id: "P5 (K=100)",
      name: "K=100: peak RSS of the server's process tree",
      figure: `ours ${k100.peak.ours.toFixed(0)} MB, peer ${k100.peak.peer.toFixed(0)} MB, floor ${k100.peak.floor.toFixed(0)} MB; ours / peer ×${rss.toFixed(2)}`,
      target: "≤ 1.3 × the peer's",
      met: rss <= 1.3
    })
  }
  const k1 = at(1)
  if (k1) {
    const q50 = ratio(k1, p50)
    const a = per(k1, p50)
    const d = per(k1, sendToRequest)
    rows.push({
      id: "P4 (K=1)",
      name: "K=1: p50 chunk→client, send_message → provider request",
      figure: `p50 ours ${ms(a.ours)}, peer ${ms(a.peer)} (${times(q50)}); send→request ours ${ms(d.ours)}, peer ${ms(d.peer)}`,
      target: "p50 ≤ 1.5 × the peer's; send→request ≤ 5 ms",
      met: q50.median <= 1.5 && d.ours.median <= 5
    })
  }
  const ours = capOf("ours")
  const peer = capOf("peer")
  if (ours && peer) {
    rows.push({
      id: "P6",
      name: "capacity: largest K at p99 chunk→client ≤ 50 ms (doubling from 100, then bisecting; bounded in time)",
      figure: `ours ${showCap(ours)}; peer ${showCap(peer)}`,
      target: "ours ≥ the peer's",
      met: ours.held >= peer.held
    })
  }
  return rows
}
