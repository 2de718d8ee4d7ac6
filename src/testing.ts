/**
 * `agent-tape/testing`: specs for your own agent, the way the project's own tests are written. `given(tape).when(
 * input).then(events)` checks the rules with the real `decide` over your config's tools; `makeAgent` runs the real
 * pipeline in-process (writer, runners, your tools, a scripted model over real HTTP), so `bun test` can drive a
 * session through approvals and the loop. No network, no real model.
 */
import { expect } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Duration, Effect, Either, Layer, Option, type Scope, Stream } from "effect"
import * as Leases from "./cluster/Leases.ts"
import { type AgentConfig, checkConfig, emptyConfig, type LoadedConfig } from "./config/file.ts"
import type { Command, Input } from "./domain/Command.ts"
import { type DecideContext, decide } from "./domain/decide.ts"
import type { Actor, Draft, Envelope, Event } from "./domain/Event.ts"
import { evolve, initialState, type SessionState } from "./domain/state.ts"
import { LlmClient, OfflineEndpoint } from "./llm/LlmClient.ts"
import * as LlmRunner from "./llm/LlmRunner.ts"
import type { OfflineEndpointService, Script } from "./llm/offline.ts"
import { contextBudget, localChoices } from "./llm/provider.ts"
import * as Bus from "./session/Bus.ts"
import * as SessionWriter from "./session/SessionWriter.ts"
import { EventStore, type EventStoreShape } from "./store/EventStore.ts"
import { layerMemory } from "./store/memory.ts"
import { makeCatalogue, ToolCatalogue } from "./tools/catalogue.ts"
import * as ToolRunner from "./tools/ToolRunner.ts"

export type { Script, ScriptToolCall, ScriptTurn } from "./llm/offline.ts"

/** A config as `defineConfig` gives it, checked (a bad one throws with the same message start-up would give). */
export const checked = (config: AgentConfig | undefined): LoadedConfig => {
  if (config === undefined) return emptyConfig
  const result = checkConfig("config", config)
  if (Either.isLeft(result)) throw new Error(result.left.message)
  return result.right
}

/**
 * The `decide` context of your config: model "scripted" and your tools (built-in ones as your config sets them,
 * your own), with their policies. MCP servers are not started for this pure context: their tools are unknown here.
 */
export const decideContextFor = (config?: AgentConfig, workspace = "."): DecideContext => {
  const catalogue = makeCatalogue({ workspace, httpAllow: [] }, {}, checked(config))
  return { model: "scripted", checkTool: catalogue.check }
}

/** A history event: a committed envelope (from a fixture), or an event with its actor (`by` defaults to system). */
export type Given = Envelope | (Event & { readonly by?: Actor })

/** What a `when` should produce: the drafts (with or without `by`), or a rejection code. */
export type Then = ReadonlyArray<Event | Draft> | { readonly rejected: string }

export interface Outcome {
  /** The drafts `decide` returned (empty on a rejection). */
  readonly drafts: ReadonlyArray<Draft>
  /** The state after folding them (the given state on a rejection). */
  readonly state: SessionState
}

const SESSION = "spec"

/** Folds `history` into a fresh state; events without a header get seq 1.., `at` = seq. */
export const foldGiven = (history: ReadonlyArray<Given>, session = SESSION): SessionState => {
  const state = initialState(session)
  for (const e of history) {
    const envelope: Envelope =
      "seq" in e && "session" in e && "at" in e
        ? { ...e }
        : { ...e, by: e.by ?? "system", session, seq: state.head + 1, at: state.head + 1 }
    evolve(state, envelope)
  }
  return state
}

/** Drops header fields so drafts compare by type and fields; keeps `by` only if the expectation has it. */
const comparable = (d: Draft | Event, keepBy: boolean): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(d)) {
    if (k === "session" || k === "seq" || k === "at") continue
    if (k === "by" && !keepBy) continue
    out[k] = v
  }
  return out
}

/** The given/when/then spec of one input. */
export const given = (history: ReadonlyArray<Given>, ctx: DecideContext = decideContextFor()) => ({
  when: (input: Input, by: Actor = "user:alice") => ({
    then: (expected: Then): Outcome => {
      const state = foldGiven(history)
      const head = state.head
      const decision = decide(state, input, by, ctx)
      if ("rejected" in expected) {
        if (Either.isRight(decision)) {
          throw new Error(`expected rejection ${expected.rejected}, got events ${JSON.stringify(decision.right.map((d) => d.type))}`)
        }
        expect(decision.left.code).toBe(expected.rejected)
        expect(decision.left.message.length).toBeGreaterThan(0)
        // decide must not have touched the state it was given.
        expect(state.head).toBe(head)
        return { drafts: [], state }
      }
      if (Either.isLeft(decision)) {
        throw new Error(`expected events, got rejection ${decision.left.code}: ${decision.left.message}`)
      }
      const actual = decision.right
      expect(actual.map((d, i) => comparable(d, expected[i] !== undefined && "by" in expected[i]!))).toEqual(
        expected.map((e) => comparable(e, "by" in e))
      )
      expect(state.head).toBe(head)
      for (const d of actual) evolve(state, { ...d, session: state.session, seq: state.head + 1, at: state.head + 1 })
      return { drafts: actual, state }
    }
  })
})

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

/** The model of a pipeline: a script for the scripted model, or a model layer of its own (e.g. a fake provider's). */
export type PipelineModel = Script | Layer.Layer<LlmClient | OfflineEndpoint, unknown>

/** What `makeAgent` runs: your config (tools, instructions) and the model (a script for the scripted model). */
export interface AgentOptions {
  readonly model: PipelineModel
  readonly config?: AgentConfig
  /** The memory's token budget (as TAPE_CONTEXT_TOKENS); else the model choice's own (8,000 for the scripted model). */
  readonly contextTokens?: number
}

/** Builds the pipeline for `model` in the current scope (torn down, workspace removed, when it closes). */
export const makePipeline = (model: PipelineModel, options: { readonly contextTokens?: number } = {}): Effect.Effect<Pipeline, unknown, Scope.Scope> =>
  makeAgent({ model, ...options })

/**
 * Your agent in-process for the life of the scope: memory store, Bus, writer, your tools and both runners, with the
 * model given (a scripted model plays its script over real HTTP). The built-in file tools read a fresh temp folder.
 */
export const makeAgent = (options: AgentOptions): Effect.Effect<Pipeline, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const model = options.model
    const user = checked(options.config)
    const workspace = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "tape-pipeline-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const store = Layer.provideMerge(Bus.layer, layerMemory)
    const llm = "turns" in model
      ? LlmClient.layerWith({ choices: localChoices("scripted"), script: model, ...(user.instructions === null ? {} : { instructions: user.instructions }) })
      : model
    const tools = ToolCatalogue.layerWith({ workspace, httpAllow: [] }, {}, user)
    const writerContext = Layer.effect(
      SessionWriter.WriterContext,
      Effect.map(Effect.all([LlmClient, ToolCatalogue]), ([llm, catalogue]) => ({
        model: llm.model,
        checkTool: catalogue.check,
        contextTokens: contextBudget(llm.models, options.contextTokens)
      }))
    )
    const writer = SessionWriter.layer.pipe(Layer.provide(writerContext))
    const services = Layer.provideMerge(writer, Layer.mergeAll(store, llm, tools, Leases.layerNone))
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

/** Runs `body` against a fresh pipeline for `model`, then tears it down. */
export const withPipeline = <A>(
  model: PipelineModel,
  body: (p: Pipeline) => Effect.Effect<A, unknown>,
  options: { readonly contextTokens?: number } = {}
): Promise<A> => Effect.runPromise(Effect.scoped(Effect.flatMap(makePipeline(model, options), body)))

/** Runs `body` against your agent (see `makeAgent`), then tears it down. */
export const withAgent = <A>(options: AgentOptions, body: (agent: Pipeline) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(makeAgent(options), body)))
