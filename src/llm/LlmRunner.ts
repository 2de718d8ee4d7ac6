/**
 * LlmRunner: reacts to TurnStarted appended by this process, streams the model with the turn's prompt, and reports
 * deltas, tool calls and the end to the SessionWriter. A closed turn interrupts its fiber, which aborts the HTTP request.
 */
import { Effect, Fiber, Stream } from "effect"
import type { Envelope } from "../domain/Event.ts"
import { promptFor } from "../domain/projections/memory.ts"
import { Leases } from "../cluster/Leases.ts"
import { Bus } from "../session/Bus.ts"
import { SessionWriter } from "../session/SessionWriter.ts"
import { ToolCatalogue } from "../tools/catalogue.ts"
import { builtinParameters } from "./builtinTools.ts"
import { LlmClient } from "./LlmClient.ts"

const key = (session: string, turnId: string) => `${session}\u0000${turnId}`

export const make = Effect.gen(function* () {
  const bus = yield* Bus
  const writer = yield* SessionWriter
  const llm = yield* LlmClient
  const catalogue = yield* ToolCatalogue
  const leases = yield* Leases
  const running = new Map<string, { readonly fiber: Fiber.RuntimeFiber<void, never>; readonly session: string; readonly turnId: string }>()

  const runTurn = (session: string, turnId: string) =>
    Effect.gen(function* () {
      // While this process streams the turn it holds a lease; if it dies, another process closes the turn.
      yield* leases.hold("turn", session, turnId)
      const memory = yield* writer.inspect(session, (s) => promptFor(s, turnId))
      const tools = catalogue.specs().map(({ name, description }) => ({ name, description, parameters: builtinParameters(name) }))
      // Interim until the writer counts it: the earlier model turns are the assistant messages of the turn's prompt.
      const modelTurn = memory.messages.filter((m) => m.role === "assistant").length
      yield* llm.stream({ memory, tools, turnId, modelTurn }).pipe(
        Stream.runForEach((chunk) =>
          Effect.gen(function* () {
            switch (chunk.type) {
              case "delta":
                return yield* writer.report(session, { type: "model_delta", turnId, text: chunk.text }, "model")
              case "tool_call":
                return yield* writer.report(
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
                yield* writer.submit(session, { type: "model_completed", turnId, ...(chunk.usage ? { usage: chunk.usage } : {}) }, "model")
                return
              default: {
                const _exhaustive: never = chunk
                return _exhaustive
              }
            }
          })
        ),
        Effect.catchTag("LlmError", (e) =>
          writer.submit(session, { type: "model_failed", turnId, error: e.message, retryable: e.retryable }, "model")
        )
      )
    }).pipe(
      Effect.scoped,
      // A rejection here means the turn was closed meanwhile (rule 5): the writer dropped the report.
      Effect.catchAll((e) => Effect.logDebug(`turn ${turnId} of ${session} stopped reporting: ${e.message}`)),
      Effect.withSpan("LlmRunner.turn", { attributes: { session, turnId } })
    )

  const onEvent = (e: Envelope) =>
    Effect.gen(function* () {
      switch (e.type) {
        case "TurnStarted": {
          if (!writer.takeLocal(e.session, e.seq)) return
          const k = key(e.session, e.turnId)
          const fiber = yield* Effect.forkDaemon(
            runTurn(e.session, e.turnId).pipe(Effect.ensuring(Effect.sync(() => running.delete(k))))
          )
          running.set(k, { fiber, session: e.session, turnId: e.turnId })
          return
        }
        case "TurnInterrupted": {
          const run = running.get(key(e.session, e.turnId))
          if (run) yield* Fiber.interrupt(run.fiber)
          return
        }
        default:
          return
      }
    })

  const events = yield* bus.subscribeAll
  yield* events.pipe(
    Stream.runForEach(onEvent),
    Effect.catchAllCause((cause) => Effect.logError("LlmRunner stopped", cause)),
    Effect.forkScoped
  )
  return {
    /** Stops every turn this process runs and records it as interrupted with `reason` (graceful shutdown). */
    stopAll: (reason: string) =>
      Effect.suspend(() => {
        const runs = [...running.values()]
        return Effect.forEach(runs, (r) =>
          Fiber.interrupt(r.fiber).pipe(
            Effect.zipRight(Effect.ignore(writer.submit(r.session, { type: "abandon_turn", turnId: r.turnId, reason }, "system")))
          )
        , { discard: true })
      })
  }
})

export type LlmRunner = Effect.Effect.Success<typeof make>
