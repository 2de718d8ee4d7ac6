/**
 * Turn throughput (issue 15, the turn's own start and end): K sessions (one client each) run R rounds of a
 * two-chunk unpaced reply at once through the real server and the bench endpoint; prints the wall time and the
 * server's CPU (process tree, /proc) per turn.
 * Not a row of `npm run bench`: the A/B harness of the changes to a turn's start and end in bench/README.md's
 * "Before and after" (`BENCH_TURNS_K`, `BENCH_TURNS_ROUNDS`; `BENCH_CPU_PROF=<dir>` profiles the server).
 *
 *   bun bench/turns.ts
 */
import { startEndpoint, textForChunks } from "./lib/endpoint.ts"
import { removeTempDirs, startTape, tempDir, WsClient } from "./lib/server.ts"
import { treeCpuMs } from "./lib/stats.ts"

const K = Number(process.env.BENCH_TURNS_K ?? 10)
const ROUNDS = Number(process.env.BENCH_TURNS_ROUNDS ?? 60)

const endpoint = startEndpoint()
const server = await startTape(endpoint.baseUrl, tempDir("turns"))
try {
  const sessions = await Promise.all(
    Array.from({ length: K }, async () => {
      const client = await WsClient.connect(server.port)
      return { client, session: await client.hello(null) }
    })
  )
  const plan = { text: textForChunks(2, 40), chunkChars: 40, delayMs: 0 }
  let n = 0
  const t0 = performance.now()
  const cpu0 = treeCpuMs(server.pid)
  for (let round = 0; round < ROUNDS; round++) {
    await Promise.all(
      sessions.map(async ({ client, session }) => {
        const id = `turns${n++}`
        endpoint.expect(id, plan)
        let ended = false
        client.onFrame = (f) => {
          if (f.type === "events") for (const e of f.events ?? []) if (e.type === "TurnCompleted" || e.type === "TurnFailed") ended = true
        }
        await client.command(session, { type: "send_message", text: `bench-${id}` })
        await client.until(() => ended, `the end of turn ${id}`, 60_000)
      })
    )
  }
  const ms = performance.now() - t0
  const cpu = treeCpuMs(server.pid) - cpu0
  const turns = K * ROUNDS
  console.log(`${turns} turns (K=${K}, ${ROUNDS} rounds, 2-chunk replies) in ${ms.toFixed(0)} ms: ${(ms / turns).toFixed(2)} ms per turn, server CPU ${(cpu / turns).toFixed(2)} ms per turn`)
  for (const { client } of sessions) client.ws.close()
} finally {
  await server.stop()
  await endpoint.stop()
  removeTempDirs()
}
