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

  "4": `**Why.** The writer→client part (store append, bus, websocket flush) stays at a few ms at p50; the rest of the
chunk→client time is spent between the endpoint's send and the writer's decision, i.e. in the model path. Profile of
the server at K = 100 (\`BENCH_CPU_PROF=/tmp/prof BENCH_KS=100 BENCH_SKIP_WIRE=1 bun bench/run.ts --only=e2e\`): with the
new fast path in \`src/llm/LlmClient.ts\` \`makeLlmClient\`, the \`onText\` callback runs \`b.parseStream.Chat(raw)\` on the
**whole accumulated reply** for every SSE read: BAML's \`parseLlmResponse\` alone was ~11 % of all server CPU samples
and the cost per chunk grows with the reply (O(n²) per reply). With two cores shared by 100 streams, the event loop
falls behind, chunks queue up in the socket, and both latency and the delta batching (several chunks per delta event)
rise. Effect's runtime (fiber run loop, span attributes, Stream chunks) is the other large share (~50 % of samples in
\`node_modules/effect\`), most of it per delta: \`LlmRunner\` offer → writer queue → \`Deferred\` → \`Bus\` queue →
\`WsBridge\` subscription stream.

**Fixes, in order of impact.**
1. \`src/llm/LlmClient.ts\` \`makeLlmClient\` → \`onText\`: stop re-parsing the whole reply per chunk. Scan the raw text
   incrementally (a small JSON-string scanner that knows the offset of the \`"text"\` value and emits only the newly
   decoded characters, holding back an unfinished escape) and call \`b.parseStream.Chat\` only once the raw text has left
   the \`text\` string (tool calls), plus \`b.parse.Chat\` once at the end. Per-chunk cost becomes O(chunk).
2. \`src/llm/LlmRunner.ts\` \`runTurn\`: the \`Stream.runForEach\` over chunks allocates an Effect per chunk and the writer
   a \`Deferred\` per input (\`SessionWriter.offer\`); add a batch-friendly \`offerMany\`/fire-and-forget offer for
   \`model_delta\` (no Deferred, the writer already drops stale reports) and use \`Stream.runForEachChunk\`.
3. Remove per-call spans on hot paths: \`Effect.fn("EventStore.append")\` in \`src/store/sql.ts\` and
   \`Stream.withSpan("LlmClient.stream")\` cost span objects and attribute maps per call (\`internal/tracer.js attribute\`
   was the top self-time entry); use \`Effect.fnUntraced\` for \`append\`/\`read\`, keep spans on coarse operations.`,

  "5": `**Why.** The floor forwards each chunk with one \`JSON.parse\` and one \`ws.send\` (~0.3 ms p50, a few % CPU at K = 100).
Ours adds the model path (see row 4: BAML parse of the accumulated reply per chunk), an SQLite transaction per batch
(SELECT head, INSERT … json_each, summary upsert, Schema encode of every envelope in \`checkBatch\`) and four Effect queue
hops per delta. At K = 1 the gap is mostly fixed per-chunk cost (~2 ms: append + publish + microtask flush); at K = 100
it is CPU saturation (two cores, ~1 core for the server vs ~0.15 for the floor).

**Fixes.** Row 4's three fixes (incremental text scan; no Deferred per delta; no spans on hot paths), then row 6's
(\`checkBatch\` guard instead of Schema encode). Expected: the K = 1 gap shrinks to the SQLite commit (~0.2 ms on an idle
machine) and K = 100 stops saturating.`,

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

  "9": `**Why.** The server's own baseline is high before any session: importing \`effect\`'s and \`@effect/platform\`'s
barrels loads every module (measured: bare Bun 29 MB, +\`effect\` 59 MB, +\`@effect/platform\` 97 MB; the idle server
with a memory store is ~127 MB). Startup then lists all 10,000 summaries (\`closeOpen\` → \`listSessions\`, a Schema
decode each), which grows the heap to ~195 MB that is not given back. 100 live streams add ~130 MB (HTTP and
websocket buffers, fibers, BAML request state, per-session writer entries).

**Fixes, by impact.**
1. Bundle the server: \`npm start\` runs \`bun build src/main.ts --target=bun --minify --external @boundaryml/baml\` and
   starts the bundle (measured idle: 87 MB instead of 127 MB, same behaviour) — \`package.json\` \`start\`, not \`src/\`.
2. \`src/main.ts\` \`closeOpen\`: ask the store for open sessions only (a \`listOpen()\` on \`EventStore\`:
   \`SELECT … FROM sessions WHERE json_extract(summary,'$.phase') IN ('streaming','executing')\`, or a \`phase\` column)
   instead of decoding every summary at start.
3. \`src/session/SessionWriter.ts\`: call \`evictIdle\` on a schedule (it exists but nothing runs it), so sessions
   opened once do not stay in memory.`
}
