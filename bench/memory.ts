/**
 * Row 9: the server's memory with 10,000 stored sessions (SQLite) and 100 live ones, each with a client and a reply
 * streaming at 50 chunks/s. Peak RSS of the real server process, sampled from /proc while it runs.
 */
import { join } from "node:path"
import { Effect, ManagedRuntime } from "effect"
import { summaryView } from "../src/domain/projections/summary.ts"
import { fold } from "../src/domain/state.ts"
import { EventStore } from "../src/store/EventStore.ts"
import { sqliteFileName } from "../src/store/layer.ts"
import { layerSqlite } from "../src/store/sqlite.ts"
import { ChunkClock, startEndpoint, textForChunks } from "./lib/endpoint.ts"
import { startTape, tempDir, WsClient } from "./lib/server.ts"
import { fixed, progress, rssMB, showSpread, spread } from "./lib/stats.ts"
import { tapeArray } from "./lib/tapes.ts"
import type { Options, Row } from "./types.ts"

const STORED = 10_000
const LIVE = 100

/** Writes `STORED` sessions of a few exchanges each into a SQLite file in `dir`; answers their ids. */
const populate = (dir: string, eventsEach: number) => {
  const rt = ManagedRuntime.make(layerSqlite({ filename: join(dir, sqliteFileName) }))
  return rt
    .runPromise(
      Effect.gen(function* () {
        const store = yield* EventStore
        const ids: Array<string> = []
        for (let i = 0; i < STORED; i++) {
          const session = `stored${i.toString().padStart(5, "0")}`
          const tape = tapeArray(session, { messages: 4, deltasPerTurn: Math.max(1, Math.floor((eventsEach - 10) / 2)), toolEvery: 0 })
          yield* store.append(session, 0, tape, summaryView(fold(session, tape)))
          ids.push(session)
        }
        return ids
      })
    )
    .finally(() => rt.dispose())
}

export const run = async (opts: Options): Promise<Array<Row>> => {
  const dir = tempDir("rss")
  const eventsEach = opts.full ? 200 : 40
  progress(`row 9: writing ${STORED.toLocaleString("en")} sessions of ~${eventsEach} events`)
  const ids = await populate(dir, eventsEach)
  const endpoint = startEndpoint()
  const server = await startTape(endpoint.baseUrl, dir)
  try {
    const idle = rssMB(server.pid).rss
    const peaks: Array<number> = []
    const rounds = opts.full ? 3 : 2
    const clients = await Promise.all(ids.slice(0, LIVE).map(async (id) => {
      const c = await WsClient.connect(server.port)
      await c.hello(id)
      return { c, id }
    }))
    const opened = rssMB(server.pid).rss
    for (let r = 0; r < rounds; r++) {
      progress(`row 9: ${LIVE} live sessions streaming, round ${r + 1}/${rounds}`)
      const plan = { text: textForChunks(opts.full ? 500 : 150, 4), chunkChars: 4, delayMs: 20 }
      let peak = 0
      const timer = setInterval(() => {
        peak = Math.max(peak, rssMB(server.pid).rss)
      }, 50)
      await Promise.all(clients.map(async ({ c, id }) => {
        const key = `r${r}${id.slice(6)}`
        endpoint.expect(key, plan)
        const clock = new ChunkClock(plan.text.length, 4, [])
        let done = false
        c.onFrame = (f, at) => {
          for (const e of f.events ?? []) {
            if (e.type === "AssistantDelta" && e.text !== undefined) clock.add(e.text.length, at, undefined)
            if (e.type === "TurnCompleted" || e.type === "TurnFailed") done = true
          }
        }
        await c.command(id, { type: "send_message", text: `bench-${key}` })
        await c.until(() => done, `reply ${key}`, 120_000)
        c.onFrame = null
      }))
      clearInterval(timer)
      peaks.push(Math.max(peak, rssMB(server.pid).rss))
    }
    const hwm = rssMB(server.pid).peak
    for (const { c } of clients) c.close()
    const s = spread(peaks)
    return [
      {
        id: "9",
        name: `server RSS with ${STORED.toLocaleString("en")} stored sessions (~${eventsEach} events each, SQLite) and ${LIVE} live (client + reply streaming)`,
        figure: `peak ${showSpread(s, fixed(0), " MB")} per round, VmHWM ${fixed(0)(hwm)} MB (idle after start ${fixed(0)(idle)} MB; after ${LIVE} sessions opened ${fixed(0)(opened)} MB)`,
        target: "≤ 250 MB (issue 15; was 300 MB in issue 7)",
        met: s.median <= 250,
        detail: { peaks, hwm, idle, opened }
      }
    ]
  } finally {
    await server.stop()
    await endpoint.stop()
  }
}
