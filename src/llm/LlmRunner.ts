/**
 * LlmRunner: runs the model turns this process appended (work on the Bus, with the prompt the writer snapshotted),
 * and reports deltas, tool calls and the end to the SessionWriter. A turn closed on the tape, here or by another
 * process, interrupts its fiber (it watches its session's gapless stream), which aborts the HTTP request; a defect in
 * a turn ends that turn as failed.
 */
import { Cause, Context, Effect, FiberMap, Layer, Stream } from "effect"
import type { Rejection } from "../domain/Command.ts"
import { Leases } from "../cluster/Leases.ts"
import type { Envelope } from "../domain/Event.ts"
import { Bus, type Committed, compactionOfLease, stopEvery, summaryLeaseKey, untilClosed, type Work, workKey } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { ToolCatalogue } from "../tools/catalogue.ts"
import type { StoreError } from "../store/EventStore.ts"
import { LlmClient, type LlmChunk } from "./LlmClient.ts"

export interface LlmRunnerShape {
  /** Stops every turn this process runs and records each as interrupted with `reason` (graceful shutdown). */
  readonly stopAll: (reason: string) => Effect.Effect<void>
}

/** Batches the runner must see: the new turns and compactions this process appended (each watches for its own close). */
const selects = (c: Committed): boolean => c.origin === "local" && c.work.some((w) => w.kind === "turn" || w.kind === "summary")

/** Whether `e` ends the compaction up to `upToSeq`. */
const closesCompaction = (upToSeq: number) => (e: Envelope): boolean =>
  (e.type === "MemoryCompacted" || e.type === "MemoryTrimmed") && e.upToSeq === upToSeq

/** Whether `e` ends the turn `turnId`. */
const closesTurn = (turnId: string) => (e: Envelope): boolean =>
  (e.type === "TurnInterrupted" || e.type === "TurnFailed" || e.type === "TurnCompleted") && e.turnId === turnId

export const make = Effect.gen(function* () {
  const bus = yield* Bus
  const writer = yield* SessionWriter
  const llm = yield* LlmClient
  const catalogue = yield* ToolCatalogue
  const leases = yield* Leases
  const turns = yield* FiberMap.make<string>()

  const stream = (work: Extract<Work, { kind: "turn" }>) => {
    const { session, turnId } = work
    const tools = catalogue.specs().map(({ name, description, parameters }) => ({ name, description, parameters }))
    // A tape may name a model this server has no choice for (another server's config, an import): the default then.
    const known = llm.models.some((m) => m.name === work.model)
    /** Runs in the fiber that read the chunk (`LlmClient.run`): a delta is queued on the writer, no hop of its own. */
    const report = (chunk: LlmChunk): Effect.Effect<void, Rejection | StoreError> => {
      switch (chunk.type) {
        case "delta":
          return writer.report(session, { type: "model_delta", turnId, text: chunk.text }, "model")
        case "tool_call":
          return writer.report(
            session,
            {
              type: "model_tool_call",
              turnId,
              tool: chunk.tool,
              args: chunk.args,
              ...(chunk.description !== undefined ? { description: chunk.description } : {})
            },
            "model"
          )
        case "done":
          return Effect.asVoid(writer.submit(session, { type: "model_completed", turnId, ...(chunk.usage ? { usage: chunk.usage } : {}) }, "model"))
        default: {
          const _exhaustive: never = chunk
          return _exhaustive
        }
      }
    }
    const input = { memory: work.prompt, tools, turnId, modelTurn: work.entry, ...(known ? { model: work.model } : {}) }
    return llm.run(input, (chunks) => (chunks.length === 1 ? report(chunks[0]!) : Effect.forEach(chunks, report, { discard: true }))).pipe(
      Effect.catchTag("LlmError", (e) => writer.submit(session, { type: "model_failed", turnId, error: e.message, retryable: e.retryable }, "model"))
    )
  }

  /** Streams the turn until it ends or its close reaches the tape, from here or from another process (`startedSeq` on). */
  const runTurn = (work: Extract<Work, { kind: "turn" }>, startedSeq: number) => {
    const { session, turnId } = work
    return Effect.gen(function* () {
      // While this process streams the turn it holds a lease; if it dies, another process closes the turn.
      yield* leases.hold("turn", session, turnId)
      yield* stream(work)
    }).pipe(
      Effect.scoped,
      untilClosed(bus, session, startedSeq, closesTurn(turnId)),
      // A rejection here means the turn was closed meanwhile (rule 5): the writer dropped the report.
      Effect.catchAll((e) => Effect.logDebug(`turn ${turnId} of ${session} stopped reporting: ${e.message}`)),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.logError(`turn ${turnId} of ${session} failed unexpectedly`, cause).pipe(
            Effect.zipRight(
              writer.submit(session, { type: "model_failed", turnId, error: "the server failed while running this turn", retryable: true }, "system")
            ),
            Effect.ignore
          )
      ),
      Effect.withSpan("LlmRunner.turn", { attributes: { session, turnId } })
    )
  }

  /**
   * Summarises a compaction like a turn: the result (or the failure) is reported to the writer, which decides; a
   * close on the tape (an interrupt's trim, from any process) stops it.
   */
  const runSummary = (work: Extract<Work, { kind: "summary" }>, startedSeq: number) => {
    const { session, upToSeq } = work
    const known = llm.models.some((m) => m.name === work.model)
    return Effect.gen(function* () {
      // Held like a turn's: if this process dies, another one's reaper closes the compaction (summaryLeaseKey).
      yield* leases.hold("turn", session, summaryLeaseKey(upToSeq))
      return yield* llm.summarize({ memory: work.messages, session, upToSeq, entry: work.entry, ...(known ? { model: work.model } : {}) })
    }).pipe(
      Effect.scoped,
      Effect.matchEffect({
        onSuccess: (summary) => writer.submit(session, { type: "model_summary", upToSeq, summary }, "model"),
        onFailure: (e) => writer.submit(session, { type: "model_summary_failed", upToSeq, error: e.message }, "model")
      }),
      untilClosed(bus, session, startedSeq, closesCompaction(upToSeq)),
      Effect.catchAll((e) => Effect.logDebug(`compaction up to ${upToSeq} of ${session} stopped reporting: ${e.message}`)),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.logError(`compaction up to ${upToSeq} of ${session} failed unexpectedly`, cause).pipe(
            Effect.zipRight(writer.submit(session, { type: "model_summary_failed", upToSeq, error: "the server failed while summarising" }, "system")),
            Effect.ignore
          )
      ),
      Effect.withSpan("LlmRunner.summary", { attributes: { session, upToSeq } })
    )
  }

  const onBatch = (c: Committed) =>
    Effect.gen(function* () {
      for (const w of c.work) {
        if (w.kind === "summary") {
          const started = c.events.find((e) => e.type === "CompactionStarted" && e.upToSeq === w.upToSeq)
          yield* FiberMap.run(turns, workKey(w.session, summaryLeaseKey(w.upToSeq)), runSummary(w, started?.seq ?? 0), { onlyIfMissing: true })
          continue
        }
        if (w.kind !== "turn") continue
        const started = c.events.find((e) => e.type === "TurnStarted" && e.turnId === w.turnId)
        yield* FiberMap.run(turns, workKey(w.session, w.turnId), runTurn(w, started?.seq ?? 0), { onlyIfMissing: true })
      }
    })

  const batches = yield* bus.subscribeCommitted(selects)
  yield* batches.pipe(
    Stream.runForEach(onBatch),
    Effect.catchAllCause((cause) => Effect.logError("LlmRunner stopped", cause)),
    Effect.forkScoped
  )

  const stopAll = (reason: string) =>
    // A compaction stopped here stays open on the tape: recovery closes it on the next start (MemoryTrimmed, rule 6).
    stopEvery(turns, (session, id) =>
      compactionOfLease(id) !== undefined ? Effect.void : Effect.ignore(writer.submit(session, { type: "abandon_turn", turnId: id, reason }, "system"))
    )

  return LlmRunner.of({ stopAll })
})

/** The model-turn runner (`"tape/LlmRunner"`): `layer` runs turns; `layerNone` runs none (a process without a model runner, tests that drive reports). */
export class LlmRunner extends Context.Tag("tape/LlmRunner")<LlmRunner, LlmRunnerShape>() {
  static readonly layer: Layer.Layer<LlmRunner, never, Bus | SessionWriter | LlmClient | ToolCatalogue | Leases> = Layer.scoped(LlmRunner, make)
  static readonly layerNone: Layer.Layer<LlmRunner> = Layer.succeed(LlmRunner, { stopAll: () => Effect.void })
}
