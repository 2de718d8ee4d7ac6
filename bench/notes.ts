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

  "4": `**Why.** At K = 100 (5,000 chunks/s in all) the server uses about one core and the event loop queues: the
writer→client part stays at p50 1 ms / p99 5 ms, so what remains is the per-chunk cost between the socket read of the
provider's SSE and the writer's decision. Profile after the fixes below (\`BENCH_CPU_PROF=/tmp/prof BENCH_KS=100
BENCH_SKIP_WIRE=1 bun bench/run.ts --only=e2e\`, 7,551 samples, self time): Effect's runtime 56 % (fiber run loop,
Stream/channel pulls, queue hand-offs per delta: SSE read → LlmClient Stream → LlmRunner → writer queue → Bus queue →
WsBridge subscription), SQLite statement execution 13.5 % (BEGIN, head check, insert, summary upsert, COMMIT per
append), \`ws.send\` with deflate 5.8 %, BAML parsing 1.2 %, all of \`src/\` under 5 %. Disabling the tracer
(\`Effect.withTracerEnabled(false)\`) made no measurable difference and was not kept.

**Tried (before → after, same machine, quick mode):** p99 265.6 → 76.0 ms, p50 84.7 → 29.1 ms.
1. Streaming the provider's SSE ourselves (\`src/llm/streamRequest.ts\`) instead of BAML's iterator, which delivered
   every ~100 ms.
2. \`src/llm/replyScanner.ts\`: the reply's text is decoded incrementally; BAML's parser runs only after the text
   closes (tool calls) and once at the end (was: on the whole reply for every chunk, ~11 % of CPU).
3. \`SessionWriter.report\`: no Deferred per streamed chunk; untraced store calls.

**Next.** Take the per-chunk path out of Effect's fiber machinery where it only forwards: parse SSE and scan text in
one plain callback that pushes straight into the session's queue (one fiber wake-up per tick, not per chunk), and let
WsBridge read the Bus queue with \`takeAll\` per tick instead of a Stream pull per event.`,

  "5": `**Why.** The floor forwards each chunk with one \`JSON.parse\` and one \`ws.send\`. Ours also persists every
delta (an SQLite transaction per batch), folds it, publishes it and compresses the frame, and runs it through the
Effect pipeline of row 4. At K = 1 the gap is a fixed ~1.5 ms per chunk (append + publish + microtask flush; p99 ×9.9
is 6.1 ms against a 0.5 ms floor); at K = 100 it is CPU (about one core against 0.16 for the floor).

**Tried:** the fixes of rows 4 and 6 (K = 1 p99 39.6 → 6.1 ms; K = 100 p99 ×11.3 → ×24 of a floor that itself got
faster on a quieter machine: 19.9 → 3.2 ms). **Next:** row 4's next step; it is the same path.`,

  "5b": `**Why.** An unpaced reply is bounded by how fast the server turns chunks into appended, published deltas. The
new LlmClient fast path re-parses the whole accumulated reply (\`b.parseStream.Chat(raw)\`) on each SSE read, which is
O(n²) over a 20,000-chunk (80 KB) reply; the old BAML stream path instead batched to ~25 deltas per reply.

**Fix.** \`src/llm/LlmClient.ts\` \`makeLlmClient\` → \`onText\`: incremental scan of the \`text\` string (see row 4, fix 1).
Then the writer's per-tick batching (\`SessionWriter\` \`drain\`, \`MAX_BATCH = 512\`) keeps SQLite to a few transactions
per tick.`,

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
at K = 100.`
}

/** What was changed to meet the targets, with the figures before and after (same machine, quick mode). */
export const history = `| change | rows | before | after |
|---|---|---|---|
| SSE read ourselves (no BAML 100 ms iterator), incremental text scan, no Deferred per chunk | 4, 5 | K=100 p99 265.6 ms, p50 84.7 ms; K=1 p99 39.6 ms | K=100 p99 76.0 ms, p50 29.1 ms; K=1 p99 6.1 ms |
| guard-checked append batches, untraced store calls | 6, 8a | SQLite writer burst 34.2 k/s; PostgreSQL 30.5 k/s; cold open 18.6 ms | 82.7 k/s; 49.6 k/s; 13.1 ms |
| permessage-deflate with a 4 KB window | 3 | ~190 B per delta frame beyond its text | 19 B (paced, one delta per chunk) |
| import platform / sql modules by path | 9 | idle 194 MB | idle 150 MB; peak 360 MB unchanged |`
