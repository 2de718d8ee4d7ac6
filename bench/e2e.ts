/**
 * Rows 3, 4, 5 and 5b: the real server process (SQLite store) streaming the bench endpoint's replies to websocket
 * clients, against the floor (bench/floor-server.ts) sending the same chunks. Latency is per chunk, from the endpoint's
 * send to the client's receipt, both timed with `performance.now()` in this process.
 */
import { type BenchEndpoint, ChunkClock, type Plan, startEndpoint, textForChunks } from "./lib/endpoint.ts"
import { startProxy } from "./lib/proxy.ts"
import { type Child, startFloor, startTape, tempDir, WsClient } from "./lib/server.ts"
import { cpuMs, fixed, percentile, progress, rssMB, showSpread, si, sortNumbers, spread } from "./lib/stats.ts"
import type { Options, Row } from "./types.ts"

let nextId = 0
const newId = () => `${process.pid.toString(36)}x${(++nextId).toString(36)}`

/** Bytes a server → client websocket frame header adds for a payload of `n` bytes (unmasked, no extensions). */
const wsHeader = (n: number) => (n < 126 ? 2 : n < 65_536 ? 4 : 10)

/** What one run of K parallel replies measured. */
interface RunResult {
  /** Per-chunk latency, ms. */
  readonly latencies: Array<number>
  /** Writer's `at` to client receipt, ms (only the server's side of the path; whole ms). */
  readonly writerLatencies: Array<number>
  readonly deltaEvents: number
  readonly chunks: number
  readonly wallMs: number
  /** Per reply: first chunk sent → last text at the client. */
  readonly replyMs: Array<number>
  readonly cpuMs: number
  /** Bytes of event frames that carried deltas, with ws headers; and the delta text they carried. */
  readonly deltaFrameBytes: number
  readonly deltaTextBytes: number
}

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

/** K replies of `plan` at once through the tape server; one client per session. */
const runTape = async (endpoint: BenchEndpoint, server: Child, sessions: ReadonlyArray<TapeSession>, plan: Plan): Promise<RunResult> => {
  const latencies: Array<number> = []
  const writerLatencies: Array<number> = []
  const replyMs: Array<number> = []
  let deltaEvents = 0
  let deltaFrameBytes = 0
  let deltaTextBytes = 0
  const origin = performance.timeOrigin
  const cpu0 = cpuMs(server.pid)
  const t0 = performance.now()
  await Promise.all(
    sessions.map(async ({ client, session }) => {
      const id = newId()
      endpoint.expect(id, plan)
      const clock = new ChunkClock(plan.text.length, plan.chunkChars, latencies)
      let completed = false
      client.onFrame = (f, at, bytes) => {
        if (f.type !== "events" || f.events === undefined) return
        let hasDelta = false
        for (const e of f.events) {
          if (e.type === "AssistantDelta" && e.text !== undefined) {
            hasDelta = true
            deltaEvents++
            deltaTextBytes += Buffer.byteLength(e.text)
            clock.add(e.text.length, at, endpoint.streams.get(id))
            writerLatencies.push(origin + at - e.at)
          } else if (e.type === "TurnCompleted" || e.type === "TurnFailed" || e.type === "TurnInterrupted") completed = true
        }
        if (hasDelta) deltaFrameBytes += bytes + wsHeader(bytes)
      }
      await client.command(session, { type: "send_message", text: `bench-${id}` })
      await client.until(() => completed, `end of reply ${id}`, 300_000)
      const s = endpoint.streams.get(id)
      if (!clock.done) throw new Error(`reply ${id} ended with ${JSON.stringify(client.frames.slice(-2))} before all its text arrived`)
      if (s?.sends[0] !== undefined) replyMs.push(clock.last - s.sends[0])
      client.onFrame = null
    })
  )
  const wallMs = performance.now() - t0
  return {
    latencies,
    writerLatencies,
    deltaEvents,
    chunks: sessions.length * Math.ceil((plan.text.length + 27) / plan.chunkChars),
    wallMs,
    replyMs,
    cpuMs: cpuMs(server.pid) - cpu0,
    deltaFrameBytes,
    deltaTextBytes
  }
}

/** The same K replies through the floor server. */
const runFloor = async (endpoint: BenchEndpoint, floor: Child, clients: ReadonlyArray<WsClient>, plan: Plan): Promise<RunResult> => {
  const latencies: Array<number> = []
  const replyMs: Array<number> = []
  let deltaEvents = 0
  let deltaFrameBytes = 0
  let deltaTextBytes = 0
  const cpu0 = cpuMs(floor.pid)
  const t0 = performance.now()
  await Promise.all(
    clients.map(async (client) => {
      const id = newId()
      endpoint.expect(id, plan)
      const n = plan.chunkChars
      let k = 0
      let done = false
      let last = 0
      client.onFrame = (f, at, bytes) => {
        if (f.type === "done") {
          done = true
          return
        }
        if (f.type !== "events" || f.events === undefined) return
        const s = endpoint.streams.get(id)
        for (const e of f.events) {
          deltaEvents++
          deltaTextBytes += Buffer.byteLength(e.text ?? "")
          const p = s?.textOffset ?? 9
          const c = k++
          // Only chunks that carry reply text, as on the tape side.
          if (s && c * n - p <= plan.text.length - 1 && c * n + n - 1 - p >= 0) {
            const sent = s.sends[c]
            if (sent !== undefined) latencies.push(at - sent)
            last = at
          }
        }
        deltaFrameBytes += bytes + wsHeader(bytes)
      }
      client.send({ type: "start", id, url: endpoint.baseUrl })
      await client.until(() => done, `floor reply ${id}`, 300_000)
      const s = endpoint.streams.get(id)
      if (s?.sends[0] !== undefined) replyMs.push(last - s.sends[0])
      client.onFrame = null
    })
  )
  return {
    latencies,
    writerLatencies: [],
    deltaEvents,
    chunks: clients.length * Math.ceil((plan.text.length + 27) / plan.chunkChars),
    wallMs: performance.now() - t0,
    replyMs,
    cpuMs: cpuMs(floor.pid) - cpu0,
    deltaFrameBytes,
    deltaTextBytes
  }
}

const p = (xs: ReadonlyArray<number>, q: number) => percentile(sortNumbers(xs), q)

/** Row 4 and 5 for one K: several runs of ours and of the floor, interleaved. */
const paced = async (endpoint: BenchEndpoint, k: number, opts: Options) => {
  const chunks = opts.full ? 500 : 150
  const plan: Plan = { text: textForChunks(chunks, 4), chunkChars: 4, delayMs: 20 }
  const runs = k >= 500 ? 2 : 3
  const server = await startTape(endpoint.baseUrl, tempDir(`k${k}`))
  const floor = await startFloor()
  try {
    const sessions = await openTapeSessions(server.port, k)
    const floorClients = await Promise.all(Array.from({ length: k }, () => WsClient.connect(floor.port)))
    progress(`row 4/5 K=${k}: warm-up`)
    const warm: Plan = { text: textForChunks(40, 4), chunkChars: 4, delayMs: 5 }
    await runTape(endpoint, server, sessions.slice(0, Math.min(k, 20)), warm)
    await runFloor(endpoint, floor, floorClients.slice(0, Math.min(k, 20)), warm)
    const ours: Array<RunResult> = []
    const base: Array<RunResult> = []
    for (let r = 0; r < runs; r++) {
      progress(`row 4/5 K=${k}: run ${r + 1}/${runs} (${chunks} chunks at 50/s per session)`)
      ours.push(await runTape(endpoint, server, sessions, plan))
      base.push(await runFloor(endpoint, floor, floorClients, plan))
    }
    const mem = rssMB(server.pid)
    const floorMem = rssMB(floor.pid)
    for (const s of sessions) s.client.close()
    for (const c of floorClients) c.close()
    return { k, ours, base, peakRss: mem.peak, floorPeakRss: floorMem.peak }
  } finally {
    await server.stop()
    await floor.stop()
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
    await runFloor(endpoint, floor, [fc], { text: textForChunks(500, 4), chunkChars: 4, delayMs: 0 })
    const ours: Array<number> = []
    const base: Array<number> = []
    const deltas: Array<number> = []
    for (let r = 0; r < runs; r++) {
      progress(`row 5b: run ${r + 1}/${runs} (20,000 chunks, unpaced)`)
      const a = await runTape(endpoint, server, [tape!], plan)
      const b = await runFloor(endpoint, floor, [fc], plan)
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

    // Rows 4 and 5
    // BENCH_KS=100 (comma-separated) narrows the K values, e.g. to profile one.
    const ks = process.env.BENCH_KS ? process.env.BENCH_KS.split(",").map(Number) : opts.full ? [1, 100, 500] : [1, 100]
    const results = []
    for (const k of ks) results.push(await paced(endpoint, k, opts))
    for (const r of results) {
      const p50 = spread(r.ours.map((x) => p(x.latencies, 50)))
      const p99 = spread(r.ours.map((x) => p(x.latencies, 99)))
      const w50 = spread(r.ours.map((x) => p(x.writerLatencies, 50)))
      const w99 = spread(r.ours.map((x) => p(x.writerLatencies, 99)))
      const eps = spread(r.ours.map((x) => (x.deltaEvents / x.wallMs) * 1000))
      const cps = spread(r.ours.map((x) => (x.chunks / x.wallMs) * 1000))
      const cpu = spread(r.ours.map((x) => (x.cpuMs / x.wallMs) * 100))
      rows.push({
        id: `4 (K=${r.k})`,
        name: `end to end, ${r.k} session(s) at 50 chunks/s each, SQLite, one client each`,
        figure:
          `chunk→client p50 ${showSpread(p50, fixed(1), " ms")}, p99 ${showSpread(p99, fixed(1), " ms")}; ` +
          `of which writer→client p50 ${showSpread(w50, fixed(0), " ms")}, p99 ${showSpread(w99, fixed(0), " ms")}; ` +
          `${showSpread(eps, si)} delta events/s for ${showSpread(cps, si)} chunks/s; server CPU ${showSpread(cpu, fixed(0), "%")} of a core; peak RSS ${r.peakRss.toFixed(0)} MB`,
        target: r.k === 100 ? "p99 ≤ 10 ms" : "report (target is set at K = 100)",
        met: r.k === 100 ? p99.median <= 10 : null,
        detail: { p50, p99, w50, w99, eps, cps, cpu, peakRss: r.peakRss }
      })
      const f50 = spread(r.base.map((x) => p(x.latencies, 50)))
      const f99 = spread(r.base.map((x) => p(x.latencies, 99)))
      const fcpu = spread(r.base.map((x) => (x.cpuMs / x.wallMs) * 100))
      const ratio99 = spread(r.ours.map((x, i) => p(x.latencies, 99) / p(r.base[i]!.latencies, 99)))
      const ratio50 = spread(r.ours.map((x, i) => p(x.latencies, 50) / p(r.base[i]!.latencies, 50)))
      rows.push({
        id: `5 (K=${r.k})`,
        name: `floor: bare Bun websocket server, same chunks, K=${r.k}`,
        figure:
          `floor p50 ${showSpread(f50, fixed(2), " ms")}, p99 ${showSpread(f99, fixed(2), " ms")}, CPU ${showSpread(fcpu, fixed(0), "%")}, peak RSS ${r.floorPeakRss.toFixed(0)} MB; ` +
          `ours / floor: p50 ×${showSpread(ratio50, fixed(1))}, p99 ×${showSpread(ratio99, fixed(1))}`,
        target: "ours ≤ 3 × floor",
        met: ratio99.median <= 3 && ratio50.median <= 3,
        detail: { f50, f99, fcpu, ratio50, ratio99 }
      })
    }

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
