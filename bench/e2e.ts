/**
 * Rows 3, 4, 5 and 5b: the real server process (SQLite store) streaming the bench endpoint's replies to websocket
 * clients, against the floor (bench/floor-server.ts) sending the same chunks. Latency is per chunk, from the endpoint's
 * send to the client's receipt, both timed with `performance.now()` in this process.
 */
import { type BenchEndpoint, ChunkClock, type Plan, renderReply, startEndpoint, textForChunks } from "./lib/endpoint.ts"
import { startProxy } from "./lib/proxy.ts"
import { type Child, startFloor, startPeer, startTape, tempDir, WsClient } from "./lib/server.ts"
import { fixed, percentile, progress, showSpread, si, sortNumbers, spread, treeCpuMs, treeRssMB } from "./lib/stats.ts"
import { peerRows } from "./peer.ts"
import type { Options, Row } from "./types.ts"

let nextId = 0
const newId = () => `${process.pid.toString(36)}x${(++nextId).toString(36)}`

/** Bytes a server → client websocket frame header adds for a payload of `n` bytes (unmasked, no extensions). */
const wsHeader = (n: number) => (n < 126 ? 2 : n < 65_536 ? 4 : 10)

/** What one run of K parallel replies measured. */
export interface RunResult {
  /** Per-chunk latency, ms. */
  readonly latencies: Array<number>
  /** Writer's `at` to client receipt, ms (only the server's side of the path; whole ms). */
  readonly writerLatencies: Array<number>
  readonly deltaEvents: number
  /** Content chunks the endpoint streamed in this run (all replies). */
  readonly chunks: number
  readonly wallMs: number
  /** Per reply: first chunk sent → last text at the client. */
  readonly replyMs: Array<number>
  /** CPU of the server's process tree during the run. */
  readonly cpuMs: number
  /** Bytes of event frames that carried deltas, with ws headers; and the delta text they carried. */
  readonly deltaFrameBytes: number
  readonly deltaTextBytes: number
  /** Per reply: the client's send (`send_message` / `start`) → the endpoint receiving the provider request, ms. */
  readonly sendToRequest: Array<number>
  /** Replies whose text did not arrive exactly once and in order (each is named in `wrongWhat`). */
  readonly wrong: number
  readonly wrongWhat: Array<string>
}

/** Chunks the endpoint sends for `plan` (the reply JSON in `chunkChars` pieces). */
const chunksOf = (plan: Plan) => Math.ceil(renderReply(plan.text).length / plan.chunkChars)

/** A tape client helloed to a fresh session, ready to stream. */
interface TapeSession {
  readonly client: WsClient
  readonly session: string
}

const openTapeSessions = async (port: number, k: number): Promise<Array<TapeSession>> => {
  const out: Array<TapeSession> = []
  // In groups, so the server is not asked to create hundreds of sessions in one tick.
  for (let i = 0; i < k; i += 25) {
    const group = await Promise.all(
      Array.from({ length: Math.min(25, k - i) }, async () => {
        const client = await WsClient.connect(port)
        const session = await client.hello(null)
        return { client, session }
      })
    )
    out.push(...group)
  }
  return out
}

/** Collects one run's figures; `finish` builds the RunResult. */
const collector = (endpoint: BenchEndpoint, pid: number, plan: Plan, replies: number) => {
  const r = {
    latencies: [] as Array<number>,
    writerLatencies: [] as Array<number>,
    replyMs: [] as Array<number>,
    sendToRequest: [] as Array<number>,
    wrongWhat: [] as Array<string>,
    deltaEvents: 0,
    deltaFrameBytes: 0,
    deltaTextBytes: 0
  }
  const cpu0 = treeCpuMs(pid)
  const t0 = performance.now()
  /** One reply is over: checks its text (exactly once, in order) and records its timings. */
  const ended = (id: string, sentAt: number, got: string, want: string, lastAt: number) => {
    const s = endpoint.streams.get(id)
    if (got !== want) {
      const at = [...want].findIndex((ch, i) => got[i] !== ch)
      r.wrongWhat.push(`${id}: ${got.length} of ${want.length} chars, first difference at ${at < 0 ? want.length : at}`)
    }
    if (s?.sends[0] !== undefined) r.replyMs.push(lastAt - s.sends[0])
    if (s !== undefined) r.sendToRequest.push(s.requestAt - sentAt)
  }
  const finish = (): RunResult => ({
    ...r,
    chunks: replies * chunksOf(plan),
    wallMs: performance.now() - t0,
    cpuMs: treeCpuMs(pid) - cpu0,
    wrong: r.wrongWhat.length
  })
  return { r, ended, finish }
}

/** K replies of `plan` at once through the tape server; one client per session. */
const runTape = async (endpoint: BenchEndpoint, server: Child, sessions: ReadonlyArray<TapeSession>, plan: Plan): Promise<RunResult> => {
  const { r, ended, finish } = collector(endpoint, server.pid, plan, sessions.length)
  const origin = performance.timeOrigin
  await Promise.all(
    sessions.map(async ({ client, session }) => {
      const id = newId()
      endpoint.expect(id, plan)
      const clock = new ChunkClock(plan.text.length, plan.chunkChars, r.latencies)
      let completed = false
      let got = ""
      client.onFrame = (f, at, bytes) => {
        if (f.type !== "events" || f.events === undefined) return
        let hasDelta = false
        for (const e of f.events) {
          if (e.type === "AssistantDelta" && e.text !== undefined) {
            hasDelta = true
            r.deltaEvents++
            r.deltaTextBytes += Buffer.byteLength(e.text)
            got += e.text
            clock.add(e.text.length, at, endpoint.streams.get(id))
            r.writerLatencies.push(origin + at - e.at)
          } else if (e.type === "TurnCompleted" || e.type === "TurnFailed" || e.type === "TurnInterrupted") completed = true
        }
        if (hasDelta) r.deltaFrameBytes += bytes + wsHeader(bytes)
      }
      const sentAt = performance.now()
      await client.command(session, { type: "send_message", text: `bench-${id}` })
      await client.until(() => completed, `end of reply ${id}`, 300_000)
      client.onFrame = null
      ended(id, sentAt, got, plan.text, clock.last)
    })
  )
  return finish()
}

/**
 * The same K replies through a relay that forwards the provider's raw deltas (the floor, the AI SDK peer): one
 * `start` frame per reply, `events` frames, a `done` frame at the end.
 */
const runRelay = async (endpoint: BenchEndpoint, relay: Child, clients: ReadonlyArray<WsClient>, plan: Plan): Promise<RunResult> => {
  const { r, ended, finish } = collector(endpoint, relay.pid, plan, clients.length)
  const want = renderReply(plan.text)
  await Promise.all(
    clients.map(async (client) => {
      const id = newId()
      endpoint.expect(id, plan)
      const clock = new ChunkClock(plan.text.length, plan.chunkChars, r.latencies)
      let done = false
      let got = ""
      client.onFrame = (f, at, bytes) => {
        if (f.type === "done" || f.type === "error") {
          done = true
          return
        }
        if (f.type !== "events" || f.events === undefined) return
        for (const e of f.events) {
          const text = e.text ?? ""
          r.deltaEvents++
          r.deltaTextBytes += Buffer.byteLength(text)
          got += text
          clock.addRaw(text.length, at, endpoint.streams.get(id))
        }
        r.deltaFrameBytes += bytes + wsHeader(bytes)
      }
      const sentAt = performance.now()
      client.send({ type: "start", id, url: endpoint.baseUrl })
      await client.until(() => done, `relay reply ${id}`, 300_000)
      client.onFrame = null
      ended(id, sentAt, got, want, clock.last)
    })
  )
  return finish()
}

const p = (xs: ReadonlyArray<number>, q: number) => percentile(sortNumbers(xs), q)

export type Kind = "ours" | "peer" | "floor"
const KINDS: ReadonlyArray<Kind> = ["ours", "peer", "floor"]

/** One server of the comparison with its clients, able to run K replies at once. */
interface Contender {
  readonly kind: Kind
  readonly child: Child
  /** Runs `plan` on the first `k` clients (opening more if needed). */
  readonly run: (k: number, plan: Plan) => Promise<RunResult>
  readonly close: () => Promise<void>
}

const contender = async (endpoint: BenchEndpoint, kind: Kind, dir: string): Promise<Contender> => {
  if (kind === "ours") {
    const child = await startTape(endpoint.baseUrl, dir)
    const sessions: Array<TapeSession> = []
    return {
      kind,
      child,
      run: async (k, plan) => {
        if (sessions.length < k) sessions.push(...(await openTapeSessions(child.port, k - sessions.length)))
        return runTape(endpoint, child, sessions.slice(0, k), plan)
      },
      close: async () => {
        for (const s of sessions) s.client.close()
        await child.stop()
      }
    }
  }
  const child = kind === "peer" ? await startPeer(dir) : await startFloor()
  const clients: Array<WsClient> = []
  return {
    kind,
    child,
    run: async (k, plan) => {
      for (let i = clients.length; i < k; i += 50) clients.push(...(await Promise.all(Array.from({ length: Math.min(50, k - i) }, () => WsClient.connect(child.port)))))
      return runRelay(endpoint, child, clients.slice(0, k), plan)
    },
    close: async () => {
      for (const c of clients) c.close()
      await child.stop()
    }
  }
}

export type Paced = Awaited<ReturnType<typeof paced>>
export type Capacity = Awaited<ReturnType<typeof capacity>>

/** The paced plan of rows 4, 5 and P: 50 chunks/s of 4 characters. */
const pacedPlan = (chunks: number): Plan => ({ text: textForChunks(chunks, 4), chunkChars: 4, delayMs: 20 })

/** Rows 4, 5 and P for one K: several rounds of ours, the AI SDK peer and the floor, interleaved (order rotated). */
const paced = async (endpoint: BenchEndpoint, k: number, opts: Options) => {
  const plan = pacedPlan(opts.full ? 500 : 150)
  const runs = opts.full || k < 300 ? 3 : 2
  const all = await Promise.all(KINDS.map((kind) => contender(endpoint, kind, tempDir(`${kind}-k${k}`))))
  try {
    progress(`K=${k}: warm-up`)
    // Opens every client and warms each server's code paths on a short reply.
    const warm: Plan = { text: textForChunks(30, 4), chunkChars: 4, delayMs: 5 }
    for (const c of all) await c.run(k, warm)
    const results: Record<Kind, Array<RunResult>> = { ours: [], peer: [], floor: [] }
    for (let r = 0; r < runs; r++) {
      for (let i = 0; i < all.length; i++) {
        const c = all[(i + r) % all.length]!
        progress(`K=${k}: round ${r + 1}/${runs}, ${c.kind} (${chunksOf(plan)} chunks at 50/s per session)`)
        results[c.kind].push(await c.run(k, plan))
      }
    }
    const peak = Object.fromEntries(all.map((c) => [c.kind, treeRssMB(c.child.pid).peak])) as Record<Kind, number>
    return { k, results, peak }
  } finally {
    for (const c of all) await c.close()
  }
}

/**
 * Row P6: the largest K one server holds at p99 chunk→client ≤ 50 ms: doubling from 100, then bisecting to 10 %,
 * one short paced run per probe, bounded in time (and by `MAX_K`, where the bench process's own clients and
 * endpoint, on the same 2 cores, become the limit).
 */
const MAX_K = 3200
const capacity = async (endpoint: BenchEndpoint, kind: Kind, opts: Options) => {
  const plan = pacedPlan(opts.full ? 250 : 100)
  const budgetMs = opts.full ? 300_000 : 75_000
  const c = await contender(endpoint, kind, tempDir(`cap-${kind}`))
  const probes: Array<{ k: number; p99: number; ok: boolean }> = []
  const t0 = performance.now()
  try {
    // A cold server's first replies run through unoptimised code: warm it as the paced rows do.
    await c.run(100, { text: textForChunks(30, 4), chunkChars: 4, delayMs: 5 })
    const probe = async (k: number) => {
      progress(`capacity ${kind}: K=${k}`)
      const res = await c.run(k, plan)
      const p99 = p(res.latencies, 99)
      const ok = p99 <= 50 && res.wrong === 0
      probes.push({ k, p99, ok })
      return ok
    }
    let lo = 0
    let hi = 0
    for (let k = 100; k <= MAX_K && performance.now() - t0 < budgetMs; k *= 2) {
      if (await probe(k)) lo = k
      else {
        hi = k
        break
      }
    }
    if (hi === 0 && lo === 0) hi = 100
    while (hi > 0 && hi - lo > Math.max(5, lo * 0.1) && performance.now() - t0 < budgetMs) {
      const mid = Math.round((lo + hi) / 2)
      if (await probe(mid)) lo = mid
      else hi = mid
    }
    return { kind, held: lo, failedAt: hi, probes, capped: hi === 0 && lo >= MAX_K / 2 }
  } finally {
    await c.close()
  }
}

/** Row 5b: one unpaced 20,000-chunk reply, ours vs the floor, several runs. */
const unpaced = async (endpoint: BenchEndpoint, opts: Options) => {
  const chunks = 20_000
  const plan: Plan = { text: textForChunks(chunks, 4), chunkChars: 4, delayMs: 0 }
  const runs = opts.full ? 5 : 3
  const server = await startTape(endpoint.baseUrl, tempDir("unpaced"))
  const floor = await startFloor()
  try {
    const [tape] = await openTapeSessions(server.port, 1)
    const fc = await WsClient.connect(floor.port)
    await runTape(endpoint, server, [tape!], { text: textForChunks(500, 4), chunkChars: 4, delayMs: 0 })
    await runRelay(endpoint, floor, [fc], { text: textForChunks(500, 4), chunkChars: 4, delayMs: 0 })
    const ours: Array<number> = []
    const base: Array<number> = []
    const deltas: Array<number> = []
    for (let r = 0; r < runs; r++) {
      progress(`row 5b: run ${r + 1}/${runs} (20,000 chunks, unpaced)`)
      const a = await runTape(endpoint, server, [tape!], plan)
      const b = await runRelay(endpoint, floor, [fc], plan)
      ours.push(((a.replyMs[0] ?? Number.NaN) * 1000) / chunks)
      base.push(((b.replyMs[0] ?? Number.NaN) * 1000) / chunks)
      deltas.push(a.deltaEvents)
    }
    tape!.client.close()
    fc.close()
    return { ours, base, deltas }
  } finally {
    await server.stop()
    await floor.stop()
  }
}

/** Row 3: bytes on the wire per streamed chunk, through a counting TCP proxy, for a short and a long reply. */
const wire = async (endpoint: BenchEndpoint, opts: Options) => {
  const server = await startTape(endpoint.baseUrl, tempDir("wire"))
  const proxy = await startProxy(server.port)
  try {
    const [tape] = await openTapeSessions(proxy.port, 1)
    const out: Array<{ chunks: number; perChunk: Array<number>; overheadPerDelta: Array<number>; deltas: Array<number> }> = []
    // The last run is paced (5 ms a chunk) so every chunk is its own delta event: the worst case per chunk.
    for (const [chunks, delayMs] of [[100, 0], [20_000, 0], [200, 5]] as const) {
      const plan: Plan = { text: textForChunks(chunks, 4), chunkChars: 4, delayMs }
      const perChunk: Array<number> = []
      const overheadPerDelta: Array<number> = []
      const deltas: Array<number> = []
      for (let r = 0; r < (opts.full ? 3 : 2); r++) {
        progress(`row 3: ${chunks} chunks, run ${r + 1}`)
        proxy.reset()
        const res = await runTape(endpoint, server, [tape!], plan)
        perChunk.push(proxy.downBytes() / res.chunks)
        // On the wire (after permessage-deflate, frame headers and acks included), beyond the text carried.
        overheadPerDelta.push((proxy.downBytes() - res.deltaTextBytes) / Math.max(1, res.deltaEvents))
        deltas.push(res.deltaEvents)
      }
      out.push({ chunks, perChunk, overheadPerDelta, deltas })
    }
    tape!.client.close()
    return out
  } finally {
    await proxy.stop()
    await server.stop()
  }
}

export const run = async (opts: Options): Promise<Array<Row>> => {
  const endpoint = startEndpoint()
  const rows: Array<Row> = []
  try {
    // Row 3 (BENCH_SKIP_WIRE=1 skips it, and 5b, when profiling rows 4–5)
    const skip = process.env.BENCH_SKIP_WIRE === "1"
    const none = (chunks: number) => ({ chunks, perChunk: [], overheadPerDelta: [], deltas: [] })
    const w = skip ? [none(100), none(20_000), none(200)] : await wire(endpoint, opts)
    const [short, long, oneEach] = w
    const sShort = spread(short!.perChunk)
    const sLong = spread(long!.perChunk)
    const oShort = spread(short!.overheadPerDelta)
    const oLong = spread(long!.overheadPerDelta)
    const sPaced = spread(oneEach!.perChunk)
    const oPaced = spread(oneEach!.overheadPerDelta)
    const flat = sLong.median <= sShort.median * 1.1 + 1 && oLong.median <= oShort.median + 10
    rows.push({
      id: "3",
      name: "websocket bytes per streamed chunk (4-char chunks, on the wire)",
      figure:
        `100 chunks: ${showSpread(sShort, fixed(1), " B")}; 20,000 chunks: ${showSpread(sLong, fixed(1), " B")}. ` +
        `Per AssistantDelta event, frame bytes beyond its text: ${showSpread(oShort, fixed(0), " B")} / ${showSpread(oLong, fixed(0), " B")} ` +
        `(${spread(short!.deltas).median} / ${spread(long!.deltas).median} delta events per reply); ` +
        `paced, one delta per chunk (200 chunks at 5 ms): ${showSpread(sPaced, fixed(1), " B")} per chunk, ` +
        `${showSpread(oPaced, fixed(0), " B")} beyond the text per delta event (${spread(oneEach!.deltas).median} delta events); all on the wire`,
      target: "≤ chunk text + 150 B (≤ 154 B) per chunk and ≤ 150 B overhead per delta event, flat in reply length",
      // Judged per chunk as measured, and per delta event: once every chunk is its own delta, the event's overhead is the per-chunk cost.
      met: sShort.median <= 154 && sLong.median <= 154 && sPaced.median <= 154 && oShort.median <= 150 && oLong.median <= 150 && oPaced.median <= 150 && flat,
      detail: { short, long, paced: oneEach }
    })

    // Rows 4, 5 and P (issue 15): ours, the AI SDK peer and the floor at each K, in the same run.
    // BENCH_KS=100 (comma-separated) narrows the K values, e.g. to profile one.
    const ks = process.env.BENCH_KS ? process.env.BENCH_KS.split(",").map(Number) : [1, 10, 100, 300]
    const results = []
    for (const k of ks) results.push(await paced(endpoint, k, opts))
    for (const r of results) {
      const ours = r.results.ours
      const floor = r.results.floor
      const p50 = spread(ours.map((x) => p(x.latencies, 50)))
      const p99 = spread(ours.map((x) => p(x.latencies, 99)))
      const w50 = spread(ours.map((x) => p(x.writerLatencies, 50)))
      const w99 = spread(ours.map((x) => p(x.writerLatencies, 99)))
      const eps = spread(ours.map((x) => (x.deltaEvents / x.wallMs) * 1000))
      const cps = spread(ours.map((x) => (x.chunks / x.wallMs) * 1000))
      const cpu = spread(ours.map((x) => (x.cpuMs / x.wallMs) * 100))
      rows.push({
        id: `4 (K=${r.k})`,
        name: `end to end, ${r.k} session(s) at 50 chunks/s each, SQLite, one client each`,
        figure:
          `chunk→client p50 ${showSpread(p50, fixed(1), " ms")}, p99 ${showSpread(p99, fixed(1), " ms")}; ` +
          `of which writer→client p50 ${showSpread(w50, fixed(0), " ms")}, p99 ${showSpread(w99, fixed(0), " ms")}; ` +
          `${showSpread(eps, si)} delta events/s for ${showSpread(cps, si)} chunks/s; server CPU ${showSpread(cpu, fixed(0), "%")} of a core; peak RSS ${r.peak.ours.toFixed(0)} MB`,
        target: r.k === 100 ? "p99 ≤ 10 ms" : "report (target is set at K = 100)",
        met: r.k === 100 ? p99.median <= 10 : null,
        detail: { p50, p99, w50, w99, eps, cps, cpu, peakRss: r.peak.ours }
      })
      const f50 = spread(floor.map((x) => p(x.latencies, 50)))
      const f99 = spread(floor.map((x) => p(x.latencies, 99)))
      const fcpu = spread(floor.map((x) => (x.cpuMs / x.wallMs) * 100))
      const ratio99 = spread(ours.map((x, i) => p(x.latencies, 99) / p(floor[i]!.latencies, 99)))
      const ratio50 = spread(ours.map((x, i) => p(x.latencies, 50) / p(floor[i]!.latencies, 50)))
      rows.push({
        id: `5 (K=${r.k})`,
        name: `floor: bare Bun websocket server, same chunks, K=${r.k}`,
        figure:
          `floor p50 ${showSpread(f50, fixed(2), " ms")}, p99 ${showSpread(f99, fixed(2), " ms")}, CPU ${showSpread(fcpu, fixed(0), "%")}, peak RSS ${r.peak.floor.toFixed(0)} MB; ` +
          `ours / floor: p50 ×${showSpread(ratio50, fixed(1))}, p99 ×${showSpread(ratio99, fixed(1))}`,
        target: "ours ≤ 3 × floor",
        met: ratio99.median <= 3 && ratio50.median <= 3,
        detail: { f50, f99, fcpu, ratio50, ratio99 }
      })
    }
    const caps = process.env.BENCH_SKIP_CAPACITY === "1" ? [] : [await capacity(endpoint, "ours", opts), await capacity(endpoint, "peer", opts)]
    rows.push(...peerRows(results, caps))

    // Row 5b
    const u = skip ? { ours: [], base: [], deltas: [] } : await unpaced(endpoint, opts)
    const ours = spread(u.ours)
    const base = spread(u.base)
    const ratio = spread(u.ours.map((x, i) => x / u.base[i]!))
    rows.push({
      id: "5b",
      name: "unpaced: one 20,000-chunk reply (4 chars), every delta persisted (SQLite), one client",
      figure:
        `${showSpread(ours, fixed(1), " µs/chunk")} (first chunk sent → last text at the client); floor ${showSpread(base, fixed(2), " µs/chunk")}; ` +
        `×${showSpread(ratio, fixed(1))} the floor; ${spread(u.deltas).median} delta events for 20,000 chunks`,
      target: "≤ 30 µs/chunk and ≤ 6 × floor",
      met: ours.median <= 30 && ratio.median <= 6,
      detail: { ours, base, ratio, deltas: u.deltas }
    })
  } finally {
    await endpoint.stop()
  }
  return rows
}
