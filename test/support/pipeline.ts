/**
 * The real pipeline in-process for a scripted model: memory store, Bus, SessionWriter, the BAML client over the
 * in-process endpoint, the tool catalogue (temp workspace) and both runners, for the life of a scope. Tests only.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Duration, Effect, Layer, Option, type Scope, Stream } from "effect"
import type { Command } from "../../src/domain/Command.ts"
import type { Envelope } from "../../src/domain/Event.ts"
import { LlmClient, OfflineEndpoint } from "../../src/llm/LlmClient.ts"
import * as LlmRunner from "../../src/llm/LlmRunner.ts"
import type { OfflineEndpointService, Script } from "../../src/llm/offline.ts"
import * as Bus from "../../src/session/Bus.ts"
import * as SessionWriter from "../../src/session/SessionWriter.ts"
import { EventStore, type EventStoreShape } from "../../src/store/EventStore.ts"
import { layerMemory } from "../../src/store/memory.ts"
import * as Leases from "../../src/cluster/Leases.ts"
import { ToolCatalogue } from "../../src/tools/catalogue.ts"
import * as ToolRunner from "../../src/tools/ToolRunner.ts"

/** The client id every command of these tests is sent as. */
export const TEST_CLIENT = "user:test"

/** How long `waitFor` waits before failing with the tape it saw. */
const WAIT_LIMIT = Duration.seconds(30)

export interface Pipeline {
  /** Creates a session; answers its id. */
  readonly create: () => Effect.Effect<string, unknown>
  /** Sends a client command as `user:test`; answers the ack (fails with the Rejection). */
  readonly submit: (session: string, command: Command) => Effect.Effect<SessionWriter.Ack, unknown>
  /** The stored tape. */
  readonly tape: (session: string) => Effect.Effect<ReadonlyArray<Envelope>, unknown>
  /** The tape as soon as `predicate` holds on it, following the Bus (catch-up, then live); fails after 30 s. */
  readonly waitFor: (session: string, predicate: (tape: ReadonlyArray<Envelope>) => boolean) => Effect.Effect<ReadonlyArray<Envelope>, unknown>
  /** The live writer (for `inspect` and `droppedReports`). */
  readonly writer: SessionWriter.SessionWriterShape
  /** The in-process model endpoint: requests and closes with `performance.now()` timestamps. */
  readonly endpoint: OfflineEndpointService
  /** The store, for a second writer over it (another process of a cluster). */
  readonly store: EventStoreShape
  /** The Bus, to hand it what a cluster's commit feed would. */
  readonly bus: Bus.BusShape
}

/** Builds the pipeline for `script` in the current scope (torn down, workspace removed, when it closes). */
export const makePipeline = (script: Script): Effect.Effect<Pipeline, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const workspace = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "tape-pipeline-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const store = Layer.provideMerge(Bus.layer, layerMemory)
    const model = LlmClient.layerScripted(script)
    const tools = ToolCatalogue.layerWith({ workspace, httpAllow: [] })
    const writerContext = Layer.effect(
      SessionWriter.WriterContext,
      Effect.map(Effect.all([LlmClient, ToolCatalogue]), ([llm, catalogue]) => ({ model: llm.model, checkTool: catalogue.check }))
    )
    const writer = SessionWriter.layer.pipe(Layer.provide(writerContext))
    const services = Layer.provideMerge(writer, Layer.mergeAll(store, model, tools, Leases.layerNone))
    const context = yield* Layer.build(Layer.provideMerge(Layer.merge(LlmRunner.LlmRunner.layer, ToolRunner.ToolRunner.layer), services))

    const w = yield* Effect.provide(SessionWriter.SessionWriter, context)
    const bus = yield* Effect.provide(Bus.Bus, context)
    const eventStore = yield* Effect.provide(EventStore, context)
    const endpoint = yield* Effect.provide(OfflineEndpoint, context)

    const waitFor = (session: string, predicate: (tape: ReadonlyArray<Envelope>) => boolean) =>
      Effect.suspend(() => {
        const seen: Array<Envelope> = []
        return bus.subscribe(session, 0).pipe(
          Stream.map((e) => {
            seen.push(e)
            return seen
          }),
          Stream.filter(predicate),
          Stream.runHead,
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(new Error(`the tape of ${session} ended before the condition held`)),
            onSome: (tape) => Effect.succeed([...tape])
          })),
          Effect.timeoutFail({
            duration: WAIT_LIMIT,
            onTimeout: () => new Error(`timed out waiting on ${session}; the tape so far:\n${seen.map((e) => JSON.stringify(e)).join("\n")}`)
          })
        )
      })

    return {
      create: () => w.create(),
      submit: (session, command) => w.submit(session, command, TEST_CLIENT),
      tape: (session) => eventStore.read(session, 0),
      waitFor,
      writer: w,
      endpoint,
      store: eventStore,
      bus
    } satisfies Pipeline
  })

/** Runs `body` against a fresh pipeline for `script`, then tears it down. */
export const withPipeline = <A>(script: Script, body: (p: Pipeline) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(makePipeline(script), body)))
