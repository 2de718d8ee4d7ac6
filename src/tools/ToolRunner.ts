/**
 * ToolRunner: reacts to ToolCallApproved appended by this process; reports ToolExecutionStarted (and runs only once
 * the writer accepted it), then the result. A cancellation interrupts the execution, which tears the sandbox down.
 */
import { Effect, Fiber, Stream } from "effect"
import type { Envelope } from "../domain/Event.ts"
import { Leases } from "../cluster/Leases.ts"
import { Bus } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { ToolCatalogue } from "./catalogue.ts"

const key = (session: string, callId: string) => `${session}\u0000${callId}`

/**
 * Runs one approved call, at most once (rule 2): holds its lease, appends ToolExecutionStarted (the writer accepts it
 * only for an approved call that has not started; nothing runs without it), then `started`, runs the tool and reports
 * the result. Interrupting the effect stops the tool and tears its sandbox down. Used in-process and by tool workers.
 */
export const executeCall = <E = never, R = never>(session: string, callId: string, started: Effect.Effect<void, E, R> = Effect.void) =>
  Effect.gen(function* () {
    const writer = yield* SessionWriter
    const catalogue = yield* ToolCatalogue
    const leases = yield* Leases
    yield* leases.hold("call", session, callId)
    yield* writer.submit(session, { type: "tool_started", callId }, "tool")
    yield* started
    const call = yield* writer.inspect(session, (s) => {
      const c = s.commands.calls.get(callId)
      return c ? { tool: c.tool, args: c.args } : null
    })
    if (call === null) return
    const result = yield* Effect.either(catalogue.run(call.tool, call.args))
    yield* writer.submit(
      session,
      result._tag === "Right"
        ? { type: "tool_succeeded", callId, output: result.right.output, ...(result.right.truncated ? { truncated: true } : {}) }
        : { type: "tool_failed", callId, error: result.left.message },
      "tool"
    )
  }).pipe(Effect.scoped)

export const make = Effect.gen(function* () {
  const bus = yield* Bus
  const writer = yield* SessionWriter
  const running = new Map<string, { readonly fiber: Fiber.RuntimeFiber<void, never>; readonly session: string; readonly callId: string }>()

  const execute = (session: string, callId: string) =>
    executeCall(session, callId).pipe(
      Effect.catchAll((e) => Effect.logDebug(`tool call ${callId} of ${session} stopped: ${e.message}`)),
      Effect.withSpan("ToolRunner.execute", { attributes: { session, callId } })
    )

  const dispatch = (session: string, callId: string) =>
    Effect.gen(function* () {
      const k = key(session, callId)
      if (running.has(k)) return
      const fiber = yield* Effect.forkDaemon(execute(session, callId).pipe(Effect.ensuring(Effect.sync(() => running.delete(k)))))
      running.set(k, { fiber, session, callId })
    })

  const onEvent = (e: Envelope) =>
    Effect.gen(function* () {
      if (e.type === "ToolCallApproved") {
        if (writer.takeLocal(e.session, e.seq)) yield* dispatch(e.session, e.callId)
        return
      }
      if (e.type === "ToolExecutionCancelled") {
        const run = running.get(key(e.session, e.callId))
        if (run) yield* Fiber.interrupt(run.fiber)
      }
    })

  const events = yield* bus.subscribeAll
  yield* events.pipe(
    Stream.runForEach(onEvent),
    Effect.catchAllCause((cause) => Effect.logError("ToolRunner stopped", cause)),
    Effect.forkScoped
  )

  /** Dispatches calls that were approved but not started when the process stopped (they never ran). */
  const resumeApproved = (session: string) =>
    Effect.gen(function* () {
      const approved = yield* writer.inspect(session, (s) =>
        [...s.commands.active].filter((id) => s.commands.calls.get(id)?.status === "approved")
      )
      for (const callId of approved) yield* dispatch(session, callId)
    })

  return {
    resumeApproved,
    /** Stops every call this process runs and records it as cancelled (outcome unknown) with `reason`. */
    stopAll: (reason: string) =>
      Effect.suspend(() =>
        Effect.forEach([...running.values()], (r) =>
          Fiber.interrupt(r.fiber).pipe(
            Effect.zipRight(Effect.ignore(writer.submit(r.session, { type: "abandon_call", callId: r.callId, reason }, "system")))
          )
        , { discard: true })
      )
  }
})

export type ToolRunner = Effect.Effect.Success<typeof make>
