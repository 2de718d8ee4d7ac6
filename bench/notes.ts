/**
 * Analysis of the rows that miss their target on the reference machine: why, and the precise fix proposed.
 * bench/run.ts prints the note of a row into bench/README.md only when that row is not met in the run.
 */
export const notes: Readonly<Record<string, string>> = {
  "1": `Fold cost is dominated by string concatenation of the assistant text in two places (messages reducer and memory
projection) and by GC of the rope strings; the spread between runs is the shared machine. Fix if it ever misses:
\`src/domain/reducers/messages.ts\` \`evolveMessages\` case \`AssistantDelta\`: keep \`parts: string[]\` and join lazily in the view.`,

  "2": `A ratio above 1.3 would mean a per-event cost that grows with history. \`uiView\` is O(pending approvals) and
\`evolve\` O(event); check \`src/domain/projections/ui.ts\` \`uiView\` and \`src/domain/state.ts\` \`evolve\` for a scan of
\`items\`/\`calls\` with \`bun --cpu-prof bench/run.ts --only=fold\`.`,

  "3": `**Why.** Every \`AssistantDelta\` costs ~185 B on the wire beyond its text: the frame wrapper
(\`{"type":"events","session":"<16>","events":[…]}\`, ~50 B), the envelope keys and values (\`type\`, \`turnId\`, \`by\`,
\`session\` again, \`seq\`, \`at\`, ~130 B) and the ws header. While deltas are coalesced by the model path (many chunks per
delta) the per-chunk figure looks small, but as soon as each chunk is its own delta (the new LlmClient path, or any
paced stream) it is ~190 B per 4-char chunk. It is flat in reply length (no snapshots are sent), which is right.

**Fix (measured in a scratch test: 192 → 10 B per delta frame, same frames, Bun client).** Enable permessage-deflate with
context takeover and ask for compression per send:
- \`src/server/Server.ts\` \`serve\`, \`Bun.serve({ websocket: { … } })\`: add \`perMessageDeflate: { compress: "dedicated", decompress: true }\`
  (plain \`true\` negotiates \`server_no_context_takeover\` and only reaches ~133 B).
- \`src/server/WsBridge.ts\` \`send\`: \`ws.send(text, true)\` (Bun compresses only when the second argument is true).
Cost: one deflate context per connection (memory: check row 9 after the change) and some CPU per frame. Browsers
negotiate it automatically. A protocol-level alternative (drop the envelope's repeated \`session\` inside \`events\`
frames, −29 B) changes the public wire shape (DESIGN.md §4) and saves far less.`,

  "4": `**Why.** At K = 100 the server's main thread is the limit: ~250 µs of CPU per chunk (process tree; see row
P2) for 5,000 chunks/s is more than the one JS thread has once the bench's own clients and endpoint take their share of
the two cores, so chunks queue before the writer (writer→client stays at p50 1 ms / p99 5 ms). Where the main thread
goes (\`BENCH_CPU_PROF=<dir> BENCH_CPU_PROF_INTERVAL=200\`, K = 100, after the fixes below): Effect's runtime 57 % of
samples (fiber run loop, channel executors, FiberRefs: the fibers woken per chunk were the SSE reader, the LlmRunner's
stream, the writer's drain, the bridge's and the turn watch's Bus subscriptions — now two: the reader, which pushes a
turn's chunks straight into the writer's queue, and the drain; the bridge is called from \`Bus.publish\`), bun:sqlite ~8 % (the append's
statements, ~20 µs each), \`ws.send\` with deflate 4 %, BAML's final parse 2.7 %, all of \`src/\` under 10 %.

**Tried (before → after, server CPU per chunk at K = 100, A/B interleaved on this machine):** 771 → ~250 µs, see
"Before and after" (the SQLite append, the SSE decoder, the provider's total timeout as one timer per call). The push
path (\`LlmClient.run\`: the reading fiber hands each read's chunks to the runner, which queues them on the writer
without an effect per chunk; no Mailbox, Stream stages or runner fiber in between) halved the latency at K = 100 (p50
~40 → ~20 ms, p99 ~150 → ~63 ms, medians of 4 and 3 interleaved runs) and cut K = 1 from ~2.3 to ~1.8 ms per chunk;
CPU per chunk at K = 100 stayed ~210–250 µs because the writer now keeps up: it appends about twice as many batches
(delta events 1.0–1.1 k/s → 2.0–2.6 k/s for ~4.4 k chunks/s), each batch a transaction and a frame.

**Then** the bridge's feed became a Bus follower called from \`Bus.publish\` (no queue, Stream or fiber per delta):
K = 100 p50 ~17 → ~15 ms, p99 ~41 → ~37 ms, CPU per chunk ~265 → ~250 µs (2 interleaved runs each, "Before and after").
Per thread at K = 100 (\`/proc/<pid>/task/*/stat\`, 15,000 chunks): our main thread ~3.0 s, the JIT ~0.3 s, Bun's HTTP
client thread 0.17 s; the peer's main thread ~1.9 s. So the gap is main-thread work per delta batch (~440 µs for ~2
chunks): the writer's drain fiber and its effects, the append (BEGIN/COMMIT ~10 % of the main thread's busy samples,
the head check ~7 %, the insert ~4 %), the publish and the frame.

**Next:** a synchronous lane in the writer for a report that finds its session idle (decide, append, publish in the
reading fiber, without waking the drain fiber; the queue stays for everything else), then group commits across
sessions (one transaction per tick for every session's batch). Replacing the head check by a conditional UPDATE of the
session's row was measured alone and was noise (253 → 244–248 µs).`,

  "5": `**Why.** The floor forwards each chunk with one \`JSON.parse\` and one \`ws.send\` (16–200 µs of CPU per chunk);
ours also stores every delta durably before it is sent (an SQLite transaction per batch), folds it, publishes it and
compresses the frame, through the Effect pipeline of row 4. At K = 1 the gap is a fixed ~1 ms per chunk of fiber
hand-offs and cold code (JIT: at K = 1 the JIT thread used 320 ms of the 900 ms the server spent over 8 s); at
K = 100 it is main-thread CPU (row 4). **Next:** row 4's next steps; it is the same path.`,

  "5b": `**Why.** An unpaced reply is bounded by how fast the server turns chunks into appended, published deltas. On
the branch this issue started from every chunk had become its own AssistantDelta (20,018 delta events for 20,000
chunks, one SQLite transaction each): 1.66 ms per chunk end to end there (A/B harness, start included), 94 µs after the
CPU fixes of rows P2/4. The text of one socket read's events is now merged into one piece (at most 4 KB), so a burst
becomes a few deltas (50 for 20,000 chunks): 6 µs per chunk in the same harness.

**If it misses:** the writer's batch could also merge consecutive deltas of one turn into one AssistantDelta
(\`SessionWriter\`/\`decide\`), for providers whose reads carry one event each.`,

  "6": `**Why.** Profile of the writer burst (\`bun --cpu-prof\` on \`bench/store.ts\`): ~21 % of samples in bun:sqlite
statements (\`all\`), ~13 % in \`src/store/codec.ts\` \`checkBatch\` → \`encodeEnvelope\` (Effect Schema encode of a
19-member union for every event, \`ParseResult\`/\`Predicate.isObject\` on top of the self-time list), ~5 % in
\`JSON.stringify\`/\`toRow\`, and the rest Effect runtime per input (Queue, Deferred, fiber run loop). The figure also
swings 3× with the machine's load (other sessions' tests share the two cores).

**Fixes.**
1. \`src/store/codec.ts\` \`checkBatch\`: validate each envelope with the compiled guard that \`fromRow\` already uses
   (\`decoders.get(event.type)?.guard\`, from \`src/store/guard.ts\`) and push the envelope itself when it passes; call
   \`encodeEnvelope\` only when the guard says no (to get the error). Same for the summary: a compiled guard for
   \`SessionSummary\` instead of \`Schema.validateEither\` here plus \`Schema.encodeSync\` again in \`summaryToJson\`.
2. \`src/store/codec.ts\` \`toRow\` + \`src/store/sql.ts\` \`append\`: build the \`rows\` JSON in one pass (no intermediate
   \`EventRow\` objects and a second object per row).
3. \`src/session/SessionWriter.ts\` \`offer\`: no \`Deferred\` for runner reports (see row 4, fix 2).`,

  "7": `Interrupt goes: submit → writer appends \`TurnInterrupted\` → Bus → \`LlmRunner.onEvent\` → \`Fiber.interrupt\` →
stream release → \`AbortController.abort()\`. A p99 over target points at the Bus subscriber of the LlmRunner lagging
behind a busy event loop; fix: in \`src/llm/LlmRunner.ts\` abort the turn's controller directly from the writer's
decision (a \`SessionWriter\` hook for \`TurnInterrupted\`), not via the Bus.`,

  "8a": `**Why.** The fold is ~5 ms; the rest is \`src/store/sql.ts\` \`read\` → \`fromRow\` per row: \`JSON.parse\` of the
payload, building the candidate object, the compiled guard, all behind @effect/sql's row mapping. It is near the target
on an idle machine and over it under load.

**Fix.** \`src/store/sql.ts\` \`read\`: select the envelope as one JSON text per row
(\`json_object('session',session,'seq',seq,…)\` merged with \`payload\`, or store the full envelope JSON in \`payload\`)
and \`JSON.parse\` the whole page at once (\`'[' || group_concat(…) || ']'\`), then run the guard; this removes the
per-row object rebuilding and one parse per row.`,

  "8b": `Replay is the fold of row 1 over a mixed tape; a miss would come from the same places (see row 1).`,

  "9": `**Why.** Idle with 10,000 stored sessions the server is at ~150 MB; with 100 live streams it peaks at ~340–360 MB.
The measurement below puts most of that in loaded code and heap capacity rather than in per-session data.

**Tried (before → after):** idle 194 → 150 MB by importing \`@effect/platform\`, \`@effect/platform-bun\` and
\`@effect/sql*\` modules by path instead of their barrels (which load cluster, rpc and workflow). \`bun --smol\` did
not lower the peak (383 MB). Peak 360 MB, unchanged within noise.

**Measured at peak** (\`heapStats()\` from \`bun:jsc\` once a second in the server): RSS 336 MB, JS heap 96 MB in use of
207 MB capacity, ~30 MB outside the heap; ~430 k function objects and ~350 k closure scopes exist from the first sample on
(module code of \`effect\`, \`@effect/*\`, the BAML client), so most of the footprint is loaded code and heap capacity
JSC keeps, not per-session data. Disabling permessage-deflate did not change the peak (350 MB).

Importing \`effect\` module by module instead of through its barrel was measured too: the modules the server uses
(Schema and Stream above all) load the same ~35 MB, so that was not done.

Bundling the server (\`bun build --target=bun --minify\`, BAML and QuickJS external) was measured after the
path imports: idle 101 → 88 MB with a memory store, ~13 MB, not enough alone and not adopted (the eval worker's URL
would need rewriting for the bundle).

**Next.** The peak is heap capacity JSC keeps after a burst (~2× the live heap) on top of loaded code: try a
forced \`Bun.gc(true)\` when a burst ends (untested here; \`--smol\` did not lower the peak) and measure its CPU cost
at K = 100.

**Since issue 14** the server also loads \`gpt-tokenizer\` (o200k_base) at start, for the memory's token count: measured
alone (\`bun -e\` importing it, RSS before → after) 23 → 116 MB, and the idle server went from ~147 to ~217 MB. It is
kept because a characters-per-token rule undercounts code, ids and non-English text, and the budget must hold for them
(measured: the compaction tests' synthetic words count 164 tokens where four characters a token says 60, a UUID 35 for 9, code 28 for 21). **What would get
there:** count with the tokenizer only where it matters (below).

**Measured at the end of issue 15** (the server alone, memory store, offline model, RSS 3 s after it listens): 175 MB
with the tokenizer, 134 MB with it stubbed out; ready in ~1.0 s with it, ~0.5 s without. Loading it lazily alone does
not help: the first message folded loads it (and that message pays ~0.4 s), so it was not done. Tokens are never more
than UTF-8 bytes, and the prompt is at most the last reported \`inputTokens\` plus the bytes of what entered since, so
a memory under the compaction threshold by that bound needs no exact count: the fold would keep byte bounds and count
exactly (loading the tokenizer) only once the bound passes the threshold, with every count it needs then computed from
the memory as it is; the compaction events would record the same figures as now. The gain is for light use only: a
session past a few KiB of text (a couple of tool outputs) passes such a bound for the smallest budgets and loads the
tokenizer, so a server in real use pays it either way.

**Heap at K = 100** (\`heapStats()\` once a second in a probe copy): 90–94 MB in use of ~230 MB capacity at RSS ~405 MB,
with up to ~1.2 M functions and ~0.8 M closure scopes alive at once during the burst (Effect's per-effect closures),
so the capacity JSC grows to follows the allocation rate of the hot path: fewer effects per chunk (row 4's next step)
is also the memory fix.`,

  "P2": `**Why.** CPU per chunk (process tree: all threads of the server, JIT and GC included) is ours ÷ peer ≈ ×2 at
K = 300 up to ×3–4 at K = 1–10. The peer does one JSON parse in the AI SDK's stream and one \`ws.send\` per chunk and
writes SQLite once per reply; ours stores every delta before it is sent (the guarantee the peer does not give: a crash
mid-reply loses the peer's whole reply), and runs each chunk through three Effect fibers (row 4; five before the push path). At low K a fixed
cost per wake-up and the JIT dominate: at K = 1, over 8 s, the main thread used 580 ms and the JIT thread 320 ms for
400 chunks (\`/proc/<pid>/task/*/stat\`); \`BUN_JSC_useFTLJIT=0\` cut the JIT thread to 180 ms but the total by noise
only (2.44 → 2.24 ms per chunk), so it was not adopted.

**What would get there:** row 4's next step, group commits across sessions (BEGIN/COMMIT are ~5 % of the main
thread at K = 100; the push path made batches smaller, so there are more of them). The SQLite store itself is no longer the cost: with the memory store the server used the same
CPU per chunk at K = 1 (2.16 vs 2.18 ms) once the append became one prepared transaction.`,

  "P3": `**Why.** p99: row 4 (main-thread CPU at K = 100). send_message → provider request at K = 100: the hundred turns
start at once, and each turn's start runs ~5–10 ms of code executed once per turn (so never optimised by the JIT),
queued behind the others and behind the chunk traffic. Measured at K = 1 with timestamps in the server (a probe copy,
not committed), from the command's arrival: decided, appended and published 1.1 ms; the LlmRunner's turn fiber
started 1.0 ms; \`LlmClient.stream\` started 2.9 ms (turn fiber, lease, the watch's subscription and catch-up read);
the prompt's inputs 1.3 ms (of which the tools' TypeBuilder 0.5 ms — now built once per tool set); BAML's render of
the request 1.6–2.4 ms (1.1–1.4 ms warm, alone); the HTTP request sent 1 ms later.

**Measured again at the end of issue 15** (probe copy, K = 1, warm turns, from the command's arrival): the writer takes
the batch 0.4–0.6 ms; decide and append 0.65–0.9 ms; the runner has the work 0.25 ms after the publish; the ack's
fiber runs before the turn's (0.4–0.6 ms); lease and start 0.3 ms; the prompt's inputs 0.1 ms; BAML's render 1.8–2.8 ms
(its async builder); the request prepared and handed to fetch 0.6–1.2 ms; then ~1.5–2 ms until the endpoint reads it
(Bun's HTTP client thread). BAML's synchronous builder (\`buildRequestSync\`) renders in 1.2–1.9 ms but blocks the main
thread for it at every turn start: K = 1 send→request unchanged within noise, K = 100 p99 41–44 → 101–152 ms; not kept.

**What would get there:** the request body built without BAML when the prompt's prefix is unchanged (render only the
new messages; BAML's render is the largest single step), the ack sent after the turn's request (it waits for the same
commit), and row 4's CPU fixes so the starts do not queue behind chunks.`,

  "P4": `**Why.** p50 at K = 1: a chunk crosses three fibers and a SQLite commit before \`ws.send\` (row 4), ~1 ms more than the
peer. send_message → provider request: see row P3 (~10 ms of once-per-turn code at K = 1, BAML's render ~1.5 ms of it).
**What would get there:** row P3's and row 4's next steps.`,

  "P5": `**Why.** The peak is loaded code and heap capacity, not per-session data: our server is 145 MB idle with no
session (the peer 63 MB with its whole reply path loaded), since it loads Effect, @effect/*, the BAML runtime, the MCP
SDK, ajv and zod at start (row 9's note: ~430 k function objects from the first sample). At K = 100 JSC keeps heap
capacity of about twice the live heap after the burst. Since issue 14 the tokenizer's tables add ~90 MB at start (row 9's note: idle ~147 → ~217 MB).

**Measured import by import** (RSS after each import and a full GC, in order): \`effect\` 25 → 70 MB; the session
writer with the domain (the tokenizer inside) → 154 MB; the model client with BAML → 184 MB; the MCP connection (SDK,
ajv) → 189 MB; the rest of the server → 194 MB. So the MCP SDK and ajv are ~5 MB (not worth a lazy import), and the
tokenizer ~40 MB of the settled idle RSS (row 9's note, with why loading it lazily alone does not help).

**What would get there:** the tokenizer counted only past a byte bound (row 9's note), a bundled build (measured
−13 MB idle), and fewer effects per chunk, since the heap capacity JSC keeps follows the hot path's allocation rate
(row 9's note: ~1.2 M functions alive at once during the K = 100 burst).`,

  "P6": `**Why.** Capacity is row 4's main-thread CPU and how long a chunk waits for it: at p99 ≤ 50 ms ours holds a little
over half of the peer's K (107 vs 188 in this run; 38 vs 119 before the push path, which took the per-chunk queue and
runner fiber out between the SSE read and the writer). **What would get there:** row 4's and P2's next steps;
capacity scales with the CPU per chunk.`
}

/** What was changed to meet the targets, with the figures before and after (same machine, quick mode). */
export const history = `| change | rows | before | after |
|---|---|---|---|
| SSE read ourselves (no BAML 100 ms iterator), incremental text scan, no Deferred per chunk | 4, 5 | K=100 p99 265.6 ms, p50 84.7 ms; K=1 p99 39.6 ms | K=100 p99 76.0 ms, p50 29.1 ms; K=1 p99 6.1 ms |
| guard-checked append batches, untraced store calls | 6, 8a | SQLite writer burst 34.2 k/s; PostgreSQL 30.5 k/s; cold open 18.6 ms | 82.7 k/s; 49.6 k/s; 13.1 ms |
| permessage-deflate with a 4 KB window | 3 | ~190 B per delta frame beyond its text | 19 B (paced, one delta per chunk) |
| import platform / sql modules by path | 9 | idle 194 MB | idle 150 MB; peak 360 MB unchanged |
| issue 15 (below: server CPU per chunk over the process tree, A/B interleaved runs of one server at a time on this machine, 300 chunks at 50/s for K=1, 150 for K=100; send→request p50 likewise) | | | |
| SQLite append as one synchronous transaction of prepared statements on the store's connection (was five @effect/sql statements); SSE read by one pull per socket read and one idle watchdog per call (was a stream stage and a timer per chunk) | P2, 4 | K=1 3.45 ms; K=100 771 µs | K=1 2.73 ms; K=100 630 µs |
| SSE decoder a line at a time (was @effect/experimental's character loop, 6 % of the main thread at K=100) | P2, 4 | K=100 548 µs | 512 µs |
| the provider's total timeout raced once in the reading fiber (was \`Stream.interruptWhen\`, a fiber hand-off per chunk) | P2, 4, P6 | K=1 2.53 ms; K=100 509 µs | K=1 1.97 ms; K=100 249 µs |
| the tools' BAML TypeBuilder built once per tool set (was once per turn) | P3, P4 | send→request K=1 18.6 ms; K=100 532 ms | 14.6 ms; 346 ms |
| a runner's close watch tested in \`Bus.publish\` (was a second Bus subscription per session woken by every delta) | P2, 4 | K=1 2.25 ms; K=100 292 µs | 2.05 ms; 290 µs |
| the text of one socket read's events merged into one piece, at most 4 KB (was one piece, delta and append per event) | 5b | unpaced 20,000 chunks: 20,018 delta events, 94 µs per chunk (start included) | 50 delta events, 6 µs per chunk |
| issue 15 altogether, the quick bench's own rows (first run of the peer rows on this branch's base → the final run) | P2, P3, P6 | K=100: ours p50 3,203 ms / p99 7,992 ms, CPU per chunk 715 µs (×6.3 the peer), send→request 326 ms; capacity 13 (peer 94); row 5b not measured at the base (A/B harness: 1.66 ms per chunk) | K=100: p50 39 ms / p99 146 ms, 217 µs (×1.7), 293 ms; capacity 38 (peer 119); row 5b 4.5 µs per chunk |
| a turn's chunks pushed from the SSE reading fiber to the writer's queue (\`LlmClient.run\`; \`SessionWriter.report\` with no effect for a loaded session; was a Mailbox, four Stream stages and the LlmRunner's fiber per chunk); medians of 4 interleaved runs before, 3 after | P2, P3, P4, 4 | K=1 CPU 2.30 ms, p50 1.57 ms; K=100 p50 39.7 ms, p99 150 ms, CPU 207 µs (1.1 k delta events/s) | K=1 1.80 ms, 1.24 ms; K=100 19.7 ms, 63.1 ms, 243 µs (2.3 k delta events/s: the writer keeps up, smaller batches) |
| the push path, the quick bench's own rows (the full run before it → the full run after it) | P3, P6 | K=100 p50 39.2 ms / p99 145.8 ms, CPU per chunk 217 µs; capacity 38 (peer 119) | K=100 p50 16.6 ms / p99 42.6 ms, 247 µs; capacity 107 (peer 188) |
| the report alone, without the push path (2 runs) | P2 | K=100 CPU 207 µs | 210 / 191 µs (noise; kept as the push path's writer half) |
| tried, not kept: the bridge drains each Bus chunk in one step, the Bus finds subscribers by session, the turn watch maps chunks | P2 | K=1 2.70 ms; K=100 554 µs | 2.65 ms; 551 µs (noise) |
| tried, not kept: HttpClient given to the provider stream instead of \`Stream.provideService\` | P2 | K=100 median 261 µs (5 runs) | 270 µs (noise) |
| measured, not changed: permessage-deflate off | 3, P2 | K=100 503 µs, 19 B beyond the text per delta frame | 499 µs (noise), ~190 B: deflate kept |
| a client's feed as a Bus follower: each event handed over by a plain call from \`Bus.publish\` (was a Bus queue, a Stream and the bridge's fiber woken per event); 2 interleaved runs each | P2, P3, P4, 4 | K=1 p50 1.29–1.42 ms; K=100 p50 16.7–17.3 ms, p99 41 ms, CPU 257–273 µs | K=1 1.12–1.33 ms; K=100 15.3 ms, 36–39 ms, 245–252 µs |
| tried, not kept: the SQLite append's head check as a conditional UPDATE of the session's row (no SELECT per append) | P2 | K=100 CPU 253 / 253 µs | 244 / 248 µs (noise) |
| tried, not kept: BAML's synchronous request builder for a turn's request (\`buildRequestSync\`) | P3, P4 | K=1 send→request 8.2 / 9.5 ms; K=100 p99 43.7 / 41.2 ms | 8.1 / 9.8 ms; 101 / 152 ms (it blocks the main thread at every turn start) |
| a turn's end and start without a whole-prompt or whole-reply pass of their own: a reply that is the answer format in strict JSON with no tool call is read without BAML's parser (\`plainReply\`, checked against BAML's parser on seeded replies), and the usage option is appended to the text of BAML's body instead of parsing and re-encoding it (\`prepareRequest\`); \`bun bench/turns.ts\` (K=10, 150 rounds of two-chunk replies, 3 interleaved runs each) | P3, P4, P6 | server CPU per turn 11.1 / 12.0 / 12.0 ms, wall 6.8 / 7.3 / 7.3 ms per turn (profile: BAML's final parse 6.4 % and the body's parse and re-encoding ~8 % of the samples) | 10.6 / 10.7 / 12.1 ms, 6.3 / 6.4 / 7.2 ms |
| \`neutralise\` returns a text with none of the markers' first pieces after one scan (was four replaces of every memory text at every turn; ~3 % of a long session's turn in the profile); with the row above, \`bun bench/turns.ts\` as there, 3 interleaved runs each | P3, P4, P6 | server CPU per turn 12.4 / 10.9 / 11.5 ms, wall 7.6 / 6.8 / 7.1 ms | 10.3 / 10.1 / 12.3 ms, 6.2 / 6.0 / 7.3 ms |
| measured, not changed: Stream.withSpan off (Bus.subscribe, LlmClient.stream); BUN_JSC_useFTLJIT=0 | P2 | K=1 2.76 ms; 2.44 ms | 2.69 ms; 2.24 ms (noise) |`
