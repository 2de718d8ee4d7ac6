/**
 * `npm run bench` (quick, under 3 minutes on the reference machine) or `npm run bench -- --full` (long runs, K = 500).
 * Runs every row group of issue 7, prints the table, and writes it with the machine's description to bench/README.md.
 * Benchmarks report; they never fail: the exit code is 0 whatever the figures (non-zero only if a bench crashed).
 * `--only=fold,store,interrupt,e2e,memory` runs some groups (the README is then not rewritten).
 */
import { loadavg } from "node:os"
import { join } from "node:path"
import { history, notes } from "./notes.ts"
import { removeTempDirs } from "./lib/server.ts"
import { machine, progress } from "./lib/stats.ts"
import type { Options, Row } from "./types.ts"

// The BAML client must load before Effect's runtime starts using it (see test/support/preload.ts).
process.env.BAML_LOG ??= "warn"
await import("../baml_client/index.ts")

const args = process.argv.slice(2)
const opts: Options = { full: args.includes("--full") }
const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",")

const groups: ReadonlyArray<{ readonly name: string; readonly run: (o: Options) => Promise<Array<Row>> }> = [
  { name: "fold", run: async (o) => (await import("./fold.ts")).run(o) },
  { name: "store", run: async (o) => (await import("./store.ts")).run(o) },
  { name: "interrupt", run: async (o) => (await import("./interrupt.ts")).run(o) },
  { name: "e2e", run: async (o) => (await import("./e2e.ts")).run(o) },
  { name: "memory", run: async (o) => (await import("./memory.ts")).run(o) },
  { name: "compact", run: async (o) => (await import("./compact.ts")).run(o) }
]

const ORDER = ["1", "2", "3", "4", "5", "5b", "6", "7", "8a", "8b", "9", "10a", "10b", "P1", "P2", "P3", "P4", "P5", "P6"]
const rank = (id: string) => {
  const head = id.split(" ")[0] ?? id
  const i = ORDER.indexOf(head)
  return i < 0 ? ORDER.length : i
}

const m = machine()
const load0 = loadavg()
const started = performance.now()
const rows: Array<Row> = []
const crashed: Array<string> = []
for (const g of groups) {
  if (only && !only.includes(g.name)) continue
  progress(`group ${g.name}`)
  try {
    rows.push(...(await g.run(opts)))
  } catch (error) {
    crashed.push(g.name)
    progress(`group ${g.name} crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    rows.push({ id: `${g.name}`, name: `group ${g.name}`, figure: `crashed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`, target: "—", met: null })
  }
}
rows.sort((a, b) => rank(a.id) - rank(b.id))
const elapsed = (performance.now() - started) / 1000
const load1 = loadavg()

const verdict = (r: Row) => (r.met === null ? "—" : r.met ? "met" : "**not met**")
const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ")
const table = [
  "| row | what | figure: median (min–max) over runs | target | result |",
  "|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.id} | ${cell(r.name)} | ${cell(r.figure)} | ${cell(r.target)} | ${verdict(r)} |`)
].join("\n")
const sections = rows.flatMap((r) => (r.section === undefined ? [] : [r.section])).join("\n\n")
const peerTable = sections === "" ? "" : `\n\n### Side by side: Agent Tape, the AI SDK peer, the floor (issue 15)\n\n${sections}`

const mode = opts.full ? "full (`--full`)" : "quick (default)"
const when = new Date().toISOString().replace(/\.\d+Z$/, "Z")
const machineText =
  `${m.cores} cores (nproc), ${m.memGiB} GiB memory, CPU: ${m.cpu}, ${m.os}, Bun ${m.bun}. ` +
  `Load average at start ${load0.map((x) => x.toFixed(2)).join(" / ")}, at end ${load1.map((x) => x.toFixed(2)).join(" / ")} (1/5/15 min).`

process.stdout.write(`\nAgent Tape bench — ${mode}, ${when}, ${elapsed.toFixed(0)} s\n${machineText}\n\n${table}${peerTable}\n`)

const missed = rows.filter((r) => r.met === false)
// A row missed at several K shares one analysis: it is written out once, the other K point to it.
const firstOf = new Map<string, string>()
const noteText = missed
  .map((r) => {
    const key = r.id.split(" ")[0] ?? r.id
    const first = firstOf.get(key)
    if (first !== undefined) return `### Row ${r.id} — not met\n\nSee row ${first}: the same cause.`
    firstOf.set(key, r.id)
    return `### Row ${r.id} — not met\n\n${notes[key] ?? "No analysis recorded for this row yet."}`
  })
  .join("\n\n")

const readme = `# Benchmarks

Figures of issues 7 and 15, written by \`bench/run.ts\`. Benchmarks report; they never fail the test suite.

## How to run

\`\`\`sh
npm run bench              # quick mode: every row, short runs (about 10 minutes here, see below)
npm run bench -- --full    # long runs: 500 chunks per reply, 3 rounds at every K, a 5-minute capacity search
DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run bench   # adds the PostgreSQL rows
npm run bench -- --only=fold,store   # some groups only (fold, store, interrupt, e2e, memory, compact); README not rewritten
bun bench/turns.ts         # turn throughput (K sessions x rounds of short replies): wall and server CPU per turn; not a row
\`\`\`

Progress goes to stderr, the table to stdout; this file is rewritten by every complete run.

Quick mode: rows 4, 5 and P at K = 1, 10, 100 and 300 with replies of 150 chunks (3 s at 50 chunks/s), 3 interleaved
rounds (2 at K = 300); the capacity search with 100-chunk probes, 75 s per server at most. \`--full\`: 500-chunk replies
(10 s), 3 rounds everywhere, 250-chunk probes for up to 5 minutes per server.

Knobs for profiling: \`BENCH_CPU_PROF=<dir>\` runs each spawned server under \`bun --cpu-prof\` (\`BENCH_CPU_PROF_INTERVAL=<µs>\`
samples more often); \`BENCH_KS=100\` narrows the K values of rows 4, 5 and P; \`BENCH_SKIP_WIRE=1\` skips rows 3 and 5b;
\`BENCH_SKIP_CAPACITY=1\` skips the capacity search (row P6).

The end-to-end rows use the server's openai-generic provider path (\`LLM_BASE_URL\`) pointed at the bench endpoint, so
every chunk's send time is known; \`LLM_SCRIPT\` takes the same client code with the endpoint inside the server process.

## How it measures

- **One module per row group**: \`fold.ts\` (rows 1, 2, 8b), \`store.ts\` (6, 8a), \`interrupt.ts\` (7), \`e2e.ts\` (3, 4, 5, 5b, P; \`peer.ts\` formats P),
  \`memory.ts\` (9), \`compact.ts\` (10); helpers in \`lib/\`; \`floor-server.ts\` is the floor. Plain \`Bun.nanoseconds()\` / \`performance.now()\`
  loops, no bench library.
- **Every figure** is the median and min–max over several runs in this one invocation on this machine; a target is
  judged on the median (latency rows: the median over runs of each run's p99).
- **End to end (3, 4, 5, 5b, 9)**: the real server process (\`bun src/main.ts\`, SQLite store in a temp folder) with the bench's
  scripted model as its provider (\`LLM_BASE_URL\` → \`lib/endpoint.ts\`, the same OpenAI-compatible SSE stream as
  \`src/llm/offline.ts\`, paced on absolute time so 50 chunks/s is exact). The endpoint runs in the bench process and
  records the \`performance.now()\` of every chunk it writes; the websocket clients run in the same process, so
  chunk→client latency is measured on one clock, per chunk: a chunk counts as delivered when the client has the last of
  its characters. "writer→client" is the envelope's \`at\` against the client's clock (whole ms): the server's own part.
- **The AI SDK peer (rows P, issue 15)**: \`peer-server.ts\`, what most developers would build instead: a Bun websocket
  server calling the AI SDK's \`streamText\` with \`@ai-sdk/openai-compatible\` (devDependencies only) on the same
  endpoint, forwarding each text delta at once in the floor's frame shape, storing the finished exchange in SQLite
  (\`bun:sqlite\`, WAL, synchronous=NORMAL like ours) in \`onFinish\` — it does not store deltas, so a crash mid-reply
  loses the reply. Ours, the peer and the floor run side by side at each K, a fresh server of each per K, rounds
  interleaved with the order rotated; every figure is the median over rounds, every target a ratio to the peer per
  round (median over rounds). **Server CPU per chunk**: utime+stime of the server and its descendants from
  \`/proc/<pid>/stat\` (all threads: JIT and GC included) over the run, divided by the chunks the endpoint streamed.
  **Peak RSS**: VmHWM summed over the process tree at the end of the K's rounds. **send_message → provider request**:
  the client's send of \`send_message\` (ours) or \`start\` (peer, floor) to the endpoint's receipt of the request
  (both \`performance.now()\` here), p50 over a round's replies. **Correctness**: every reply's text, as the client
  got it, must be the reply exactly (each chunk once, in order); a failure shows in the table and in row P1.
  **Capacity (P6)**: the largest K with p99 chunk→client ≤ 50 ms, by one short paced run per probe, doubling from 100
  and then bisecting to 10 %, bounded in time; the bench's own clients and endpoint share the machine's two cores.
- **Long sessions (10, issue 14)**: \`compact.ts\`, one session of the scripted model through the real pipeline
  (writer, Bus, LLM runner, the in-process endpoint over HTTP; 8,000-token budget; usage counted by a real tokenizer,
  as a provider reports it), 250 exchanges (500 messages; \`--full\`: 500 exchanges, 1,000 messages). **10a** compares
  the prompt the endpoint received per turn (tokens) at messages 100–200 with the last 100, and its maximum; **10b**
  the time from a message to its reply completing over the same windows. Both should stay flat in session length:
  compaction keeps the prompt under the budget however long the tape grows.
- **The floor (5, 5b)**: \`floor-server.ts\`, a bare \`Bun.serve\` websocket server with no framework, no store and no
  reducers, that reads the same endpoint's SSE and forwards each chunk at once in an \`events\` frame of our shape.
  Same endpoint, same clients, same run, interleaved with ours.
- **Bytes on the wire (3)**: a TCP proxy (\`lib/proxy.ts\`) counts every byte the server sends to the client during a
  reply (frame headers, acks and control events included), divided by the reply's chunks.
- **Interrupt (7)**: the in-process pipeline of \`test/support/pipeline.ts\` (writer, runners, BAML, in-process scripted
  endpoint); from the \`interrupt\` submit to the endpoint's \`closed\` event (both \`performance.now()\`).
- **Store (6)**: a burst of \`model_delta\` inputs offered to the SessionWriter without waiting (its per-tick batching
  applies), then raw \`EventStore.append\` calls of 1 and 100 events, each with the real summary.

## Machine

${machineText}

Run: ${mode}, ${when}, ${elapsed.toFixed(0)} s in all. The machine is shared: other processes (tests, type checks, browsers)
may run at the same time, which shows as spread between runs.

## Figures

${table}${peerTable}

## Before and after

${history}

${missed.length > 0 ? `## Targets not met: why, what was tried, what is next\n\n${noteText}\n` : "Every target is met.\n"}`

if (only === undefined) {
  await Bun.write(join(import.meta.dir, "README.md"), readme)
  progress("wrote bench/README.md")
}
if (crashed.length > 0) {
  progress(`crashed groups: ${crashed.join(", ")}`)
  process.exitCode = 1
}
removeTempDirs()
// Child servers are stopped by each group; nothing else should keep the process alive.
process.exit()
