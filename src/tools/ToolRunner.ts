/**
 * ToolRunner: runs the tool calls this process approved (work on the Bus, with the args they run with). A call runs only
 * once the writer accepted its ToolExecutionStarted; a cancellation on the tape, here or by another process,
 * interrupts it (it watches its session's gapless stream), which tears its sandbox down. Each session runs a few calls at a time, so one cannot starve others.
 */
import { Cause, Context, Duration, Effect, FiberMap, Layer, Schedule, Stream } from "effect"
import { Leases } from "../cluster/Leases.ts"
import type { Envelope, JsonObject } from "../domain/Event.ts"
import { fold } from "../domain/state.ts"
import { Bus, type Committed, stopEvery, untilClosed, type Work, workKey } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { EventStore, type StoreError } from "../store/EventStore.ts"
import { ToolCatalogue } from "./catalogue.ts"

/** Calls of one session running at once in one process; more wait, still `approved`, for a free place. */
export const CALLS_PER_SESSION = 2

/** An approved call: what it runs. */
export interface CallWork {
  readonly session: string
  readonly callId: string
  readonly tool: string
  readonly args: JsonObject
}

/** Retries of the ToolExecutionStarted report while the store refuses writes (the call has not run: nothing is lost). */
const startRetry = Schedule.exponential(Duration.millis(100), 2).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5))),
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(20))
)

/**
 * Runs one approved call, at most once (rule 2): holds its lease, appends ToolExecutionStarted (the writer accepts it
 * only for an approved call that has not started; nothing runs without it), then `started`, runs the tool and reports
 * the result. Interrupting the effect stops the tool and tears its sandbox down. Used in-process and by tool workers.
 */
export const executeCall = <E = never, R = never>(call: CallWork, started: Effect.Effect<void, E, R> = Effect.void) =>
  Effect.gen(function* () {
    const writer = yield* SessionWriter
    const catalogue = yield* ToolCatalogue
    const leases = yield* Leases
    const { session, callId } = call
    yield* leases.hold("call", session, callId)
    // A failed write may still have been stored (the COMMIT went through, its answer was lost): then the retry finds
    // the call running. Whose start that was cannot be known, so the call is not run, and it is cancelled (outcome
    // unknown) rather than left running with no one on it.
    let unsure = false
    yield* writer.submit(session, { type: "tool_started", callId }, "tool").pipe(
      Effect.tapError((e) =>
        Effect.sync(() => {
          if (e._tag === "StoreError") unsure = true
        })
      ),
      Effect.retry({ schedule: startRetry, while: (e) => e._tag === "StoreError" }),
      Effect.tapError((e) =>
        unsure && e._tag === "Rejection"
          ? Effect.ignore(
            writer.submit(session, { type: "abandon_call", callId, reason: "its start could not be confirmed (the store failed while it was written); it was not run" }, "system")
          )
          : Effect.void
      )
    )
    yield* started
    const result = yield* Effect.either(catalogue.run(call.tool, call.args, { session, callId }))
    yield* writer.submit(
      session,
      result._tag === "Right"
        ? { type: "tool_succeeded", callId, output: result.right.output, ...(result.right.truncated ? { truncated: true } : {}) }
        : result.left.mayHaveRun
          // It broke off under way (its server vanished mid-call): it may have had effects, so it is never run again.
          ? { type: "tool_cancelled", callId, reason: result.left.message, outcome: "unknown" }
          : { type: "tool_failed", callId, error: result.left.message },
      "tool"
    )
  }).pipe(Effect.scoped)

/** An approved, not started call of a stored session, read from its tape (tool workers and recovery, not the writer). */
export const storedCall = (session: string, callId: string): Effect.Effect<CallWork | null, StoreError, EventStore> =>
  Effect.gen(function* () {
    const store = yield* EventStore
    const c = fold(session, yield* store.read(session, 0)).commands.calls.get(callId)
    return c?.status === "approved" ? { session, callId, tool: c.tool, args: c.args } : null
  })

export interface ToolRunnerShape {
  /** Runs the calls of `session` that were approved but not started when the process stopped (they never ran). */
  readonly resumeApproved: (session: string) => Effect.Effect<void, StoreError>
  /** Stops every call this process runs and records it as cancelled (outcome unknown) with `reason`. */
  readonly stopAll: (reason: string) => Effect.Effect<void>
}

/** Batches the runner must see: the approvals this process appended (each call watches for its own cancellation). */
const selects = (c: Committed): boolean => c.origin === "local" && c.work.some((w) => w.kind === "call")

/** Whether `e` takes the call `callId` from whoever runs or is about to run it (a cancellation, a reopened approval). */
export const closesCall = (callId: string) => (e: Envelope): boolean =>
  (e.type === "ToolExecutionCancelled" || e.type === "ToolCallReopened") && e.callId === callId

export const make = Effect.gen(function* () {
  const bus = yield* Bus
  const writer = yield* SessionWriter
  const store = yield* EventStore
  const context = yield* Effect.context<SessionWriter | ToolCatalogue | Leases>()
  const calls = yield* FiberMap.make<string>()
  /** Per session, a semaphore of CALLS_PER_SESSION places and how many calls hold or wait for one. */
  const places = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()

  const placeOf = (session: string) =>
    Effect.acquireRelease(
      Effect.suspend(() => {
        const existing = places.get(session)
        if (existing) {
          existing.users++
          return Effect.succeed(existing.semaphore)
        }
        return Effect.map(Effect.makeSemaphore(CALLS_PER_SESSION), (semaphore) => {
          places.set(session, { semaphore, users: 1 })
          return semaphore
        })
      }),
      () =>
        Effect.sync(() => {
          const p = places.get(session)
          if (p && --p.users === 0) places.delete(session)
        })
    )

  /** Runs the call until it ends or its cancellation reaches the tape, from here or another process (`approvedSeq` on). */
  const run = (call: CallWork, approvedSeq: number) =>
    Effect.gen(function* () {
      const semaphore = yield* placeOf(call.session)
      yield* semaphore.withPermits(1)(executeCall(call))
    }).pipe(
      Effect.scoped,
      untilClosed(bus, call.session, approvedSeq, closesCall(call.callId)),
      Effect.provide(context),
      Effect.catchAll((e) => Effect.logDebug(`tool call ${call.callId} of ${call.session} stopped: ${e.message}`)),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.void
          : Effect.logError(`tool call ${call.callId} of ${call.session} failed unexpectedly`, cause).pipe(
            Effect.zipRight(writer.submit(call.session, { type: "abandon_call", callId: call.callId, reason: "the server failed while running it" }, "system")),
            Effect.ignore
          )
      ),
      Effect.withSpan("ToolRunner.execute", { attributes: { session: call.session, callId: call.callId } })
    )

  const dispatch = (call: CallWork, approvedSeq: number) =>
    FiberMap.run(calls, workKey(call.session, call.callId), run(call, approvedSeq), { onlyIfMissing: true })

  const onBatch = (c: Committed) =>
    Effect.gen(function* () {
      for (const w of c.work) {
        if (w.kind !== "call") continue
        const approved = c.events.find((e) => e.type === "ToolCallApproved" && e.callId === w.callId)
        yield* dispatch(w, approved?.seq ?? 0)
      }
    })

  const batches = yield* bus.subscribeCommitted(selects)
  yield* batches.pipe(
    Stream.runForEach(onBatch),
    Effect.catchAllCause((cause) => Effect.logError("ToolRunner stopped", cause)),
    Effect.forkScoped
  )

  const resumeApproved = (session: string) =>
    Effect.gen(function* () {
      const state = fold(session, yield* store.read(session, 0))
      for (const callId of state.commands.active) {
        const c = state.commands.calls.get(callId)
        if (c?.status === "approved") yield* dispatch({ session, callId, tool: c.tool, args: c.args }, state.head)
      }
    })

  const stopAll = (reason: string) =>
    stopEvery(calls, (session, callId) => Effect.ignore(writer.submit(session, { type: "abandon_call", callId, reason }, "system")))

  return ToolRunner.of({ resumeApproved, stopAll })
})

/** The tool-call runner (`"tape/ToolRunner"`): `layer` runs calls in-process; `layerNone` runs none (tools run on workers, or tests that drive reports). */
export class ToolRunner extends Context.Tag("tape/ToolRunner")<ToolRunner, ToolRunnerShape>() {
  static readonly layer: Layer.Layer<ToolRunner, never, Bus | SessionWriter | EventStore | ToolCatalogue | Leases> = Layer.scoped(ToolRunner, make)
  static readonly layerNone: Layer.Layer<ToolRunner> = Layer.succeed(ToolRunner, { resumeApproved: () => Effect.void, stopAll: () => Effect.void })
}
