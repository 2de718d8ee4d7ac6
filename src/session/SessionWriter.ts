/**
 * SessionWriter: the one writer of every session. A serial queue per session: decide → append (expected head) → evolve
 * → publish. Inputs that arrive in the same tick are decided in order and appended as one batch. Owns session state.
 */
import { Clock, Context, Deferred, Effect, Either, Fiber, Layer, Option, Queue, Random } from "effect"
import { type Input, Rejection } from "../domain/Command.ts"
import { type DecideContext, decide } from "../domain/decide.ts"
import type { Actor, Draft, Envelope } from "../domain/Event.ts"
import { summaryView } from "../domain/projections/summary.ts"
import { evolve, fold, initialState, isBusy, type SessionState } from "../domain/state.ts"
import { EventStore, StoreError } from "../store/EventStore.ts"
import { Bus } from "./Bus.ts"

/** The reply to one input: the head after its append and the events it appended (empty when it changed nothing). */
export interface Ack {
  readonly head: number
  readonly events: ReadonlyArray<Envelope>
}

export interface SessionWriterShape {
  /** Decides one input for `session` in its serial queue; fails with the Rejection, or a StoreError. */
  readonly submit: (session: string, input: Input, by: Actor) => Effect.Effect<Ack, Rejection | StoreError>
  /**
   * Queues one input without waiting for its decision; inputs offered in order are decided in that order, and those
   * offered in one tick share one append. The Deferred completes with the Ack or the Rejection.
   */
  readonly offer: (session: string, input: Input, by: Actor) => Effect.Effect<Deferred.Deferred<Ack, Rejection | StoreError>, Rejection | StoreError>
  /**
   * Queues a runner report and waits for nothing (the hot path of a streamed reply: no Deferred per chunk). Ordered
   * with every other input of the session; a rejection (the turn was closed meanwhile) is counted as dropped.
   */
  readonly report: (session: string, input: Input, by: Actor) => Effect.Effect<void, Rejection | StoreError>
  /** Creates a new session; answers its id. */
  readonly create: (opts?: { readonly title?: string }) => Effect.Effect<string, StoreError>
  /**
   * Creates a new session whose tape is `tape` (already validated envelopes of one session, seq 1..N), then closes
   * what was open at its end (reason `fork` / `import`): the model is never called for the copied prefix.
   */
  readonly adopt: (
    tape: ReadonlyArray<Envelope>,
    opts: { readonly reason: "fork" | "import"; readonly forkedFrom?: { readonly session: string; readonly seq: number } }
  ) => Effect.Effect<string, Rejection | StoreError>
  /**
   * Runs `f` on the session's state, brought up to the store's head first, while no batch is being decided
   * (so it never sees unstored events). `f` must not keep references.
   */
  readonly inspect: <A>(session: string, f: (s: SessionState) => A) => Effect.Effect<A, Rejection | StoreError>
  /**
   * True once for a TurnStarted or ToolCallApproved that this process appended: runners act only on those, so a turn
   * or call runs in the one process that decided it, never for events read back from the store (other processes, forks).
   */
  readonly takeLocal: (session: string, seq: number) => boolean
  /** Reports for turns or calls no longer active, dropped since start (rule 5). */
  readonly droppedReports: () => number
  /** Drops idle sessions' state from memory (it is reloaded from the store on next use). */
  readonly evictIdle: (olderThanMs: number) => Effect.Effect<number>
}

export class SessionWriter extends Context.Tag("tape/SessionWriter")<SessionWriter, SessionWriterShape>() {}

/** The model name and tool catalogue `decide` needs. */
export class WriterContext extends Context.Tag("tape/WriterContext")<WriterContext, DecideContext>() {}

interface Pending {
  readonly input: Input
  readonly by: Actor
  /** Null for a report nobody waits on (streamed deltas): its rejection is only counted. */
  readonly done: Deferred.Deferred<Ack, Rejection | StoreError> | null
}

interface Entry {
  state: SessionState
  readonly queue: Queue.Queue<Pending>
  lastAt: number
  lastUsed: number
  fiber: Fiber.RuntimeFiber<never, never> | null
  /** Set when evicted: a submit that raced the eviction looks the session up again. */
  evicted: boolean
  /** True while the drain fiber holds a batch. */
  busy: boolean
  /** Set after a conflict: other processes write this session too, so read what they appended before deciding. */
  shared: boolean
  /** Held while a batch is decided and appended, and while `inspect` reads: readers never see unstored events. */
  readonly lock: Effect.Semaphore
}

/** Appends retried on a concurrent writer's conflict (other processes on PostgreSQL), with capped jittered backoff. */
const CONFLICT_RETRIES = 40
const BACKOFF_CAP_MS = 50
const MAX_BATCH = 512
/** Local triggers kept for runners; a process with no runner for a kind lets the oldest go. */
const MAX_LOCAL_TRIGGERS = 10_000

const isReport = (input: Input): boolean =>
  input.type.startsWith("model_") || input.type.startsWith("tool_")

export const make = Effect.gen(function* () {
  const store = yield* EventStore
  const bus = yield* Bus
  const ctx = yield* WriterContext
  const entries = new Map<string, Deferred.Deferred<Option.Option<Entry>, StoreError>>()
  /** Loaded entries, for eviction. */
  const live = new Map<string, Entry>()
  let dropped = 0
  const local = new Set<string>()
  const markLocal = (events: ReadonlyArray<Envelope>) => {
    for (const e of events) {
      if (e.type !== "TurnStarted" && e.type !== "ToolCallApproved") continue
      local.add(`${e.session}\u0000${e.seq}`)
      if (local.size > MAX_LOCAL_TRIGGERS) local.delete(local.values().next().value!)
    }
  }
  const takeLocal = (session: string, seq: number) => local.delete(`${session}\u0000${seq}`)

  const load = (session: string) =>
    Effect.gen(function* () {
      const events = yield* store.read(session, 0)
      return fold(session, events)
    })

  /** Brings `entry.state` up to the store's head (events other processes appended). */
  const catchUp = (session: string, entry: Entry) =>
    Effect.gen(function* () {
      const events = yield* store.read(session, entry.state.head)
      for (const e of events) {
        evolve(entry.state, e)
        entry.lastAt = Math.max(entry.lastAt, e.at)
      }
    })

  /** Decides a batch in order against the live state, appends what it produced as one batch, then publishes. */
  const runBatch = (session: string, entry: Entry, batch: ReadonlyArray<Pending>) =>
    Effect.gen(function* () {
      if (entry.shared) yield* catchUp(session, entry)
      const base = entry.state.head
      const now = yield* Clock.currentTimeMillis
      const at = Math.max(now, entry.lastAt)
      const appended: Array<Envelope> = []
      const results: Array<Either.Either<Ack, Rejection>> = []
      for (const p of batch) {
        const d = decide(entry.state, p.input, p.by, ctx)
        if (Either.isLeft(d)) {
          results.push(Either.left(d.left))
          continue
        }
        const events = d.right.map((draft: Draft, i): Envelope => ({ ...draft, session, seq: entry.state.head + i + 1, at }))
        for (const e of events) evolve(entry.state, e)
        appended.push(...events)
        results.push(Either.right({ head: entry.state.head, events }))
      }
      if (appended.length > 0) {
        const ok = yield* store.append(session, base, appended, summaryView(entry.state)).pipe(
          Effect.as(true),
          Effect.catchTag("AppendConflict", () => Effect.succeed(false))
        )
        if (!ok) return false
        entry.lastAt = at
        markLocal(appended)
        yield* bus.publish(appended)
      }
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i]!
        const r = results[i]!
        if (Either.isLeft(r) && isReport(p.input)) {
          dropped++
          yield* Effect.logDebug(`dropped ${p.input.type} for ${session}: ${r.left.message}`)
        }
        if (p.done) yield* Deferred.complete(p.done, Either.isLeft(r) ? Effect.fail(r.left) : Effect.succeed(r.right))
      }
      return true
    })

  /** Runs a batch; on a conflict (another writer appended) or a failed append, reloads from the store and re-decides. */
  const process = (session: string, entry: Entry, batch: ReadonlyArray<Pending>) =>
    Effect.gen(function* () {
      for (let attempt = 0; ; attempt++) {
        const result = yield* Effect.either(runBatch(session, entry, batch))
        if (Either.isRight(result) && result.right) return
        // The live state may hold events that were not stored: rebuild it from the store before anything else.
        entry.state = yield* load(session).pipe(Effect.orElseSucceed(() => initialState(session)))
        entry.shared = true
        if (Either.isLeft(result) || attempt >= CONFLICT_RETRIES) {
          const error = Either.isLeft(result)
            ? result.left
            : new StoreError({ message: `append to ${session} kept conflicting with other writers`, session })
          for (const p of batch) if (p.done) yield* Deferred.fail(p.done, error)
          return
        }
        const jitter = yield* Random.nextIntBetween(1, Math.min(BACKOFF_CAP_MS, 2 * 2 ** attempt) + 1)
        yield* Effect.sleep(jitter)
      }
    })

  const drain = (session: string, entry: Entry): Effect.Effect<never> =>
    Effect.gen(function* () {
      const first = yield* Queue.take(entry.queue)
      const rest = yield* Queue.takeUpTo(entry.queue, MAX_BATCH - 1)
      entry.busy = true
      entry.lastUsed = yield* Clock.currentTimeMillis
      yield* entry.lock.withPermits(1)(process(session, entry, [first, ...rest])).pipe(
        Effect.ensuring(Effect.sync(() => {
          entry.busy = false
        })),
        Effect.catchAllCause((cause) =>
          Effect.logError(`writer of ${session} failed a batch`, cause).pipe(
            Effect.zipRight(Effect.forEach([first, ...rest], (p) => (p.done ? Deferred.die(p.done, cause) : Effect.void)))
          )
        )
      )
    }).pipe(Effect.forever)

  const scope = yield* Effect.scope
  const newEntry = (state: SessionState) =>
    Effect.gen(function* () {
      const queue = yield* Queue.unbounded<Pending>()
      const lock = yield* Effect.makeSemaphore(1)
      const now = yield* Clock.currentTimeMillis
      const entry: Entry = { state, queue, lastAt: state.counters.updatedAt, lastUsed: now, fiber: null, evicted: false, busy: false, shared: false, lock }
      entry.fiber = yield* Effect.forkIn(drain(state.session, entry), scope)
      return entry
    })

  /** The live entry of a session, loading it once; `None` when the store has no such session. */
  const entryOf = (session: string): Effect.Effect<Option.Option<Entry>, StoreError> =>
    Effect.gen(function* () {
      const existing = entries.get(session)
      if (existing) return yield* Deferred.await(existing)
      const loading = yield* Deferred.make<Option.Option<Entry>, StoreError>()
      entries.set(session, loading)
      const state = yield* Effect.either(load(session))
      if (Either.isLeft(state)) {
        entries.delete(session)
        yield* Deferred.fail(loading, state.left)
        return yield* Effect.fail(state.left)
      }
      if (state.right.head === 0) {
        // Not a session (yet): keep nothing in memory, and start no fiber, for ids that do not exist.
        entries.delete(session)
        yield* Deferred.succeed(loading, Option.none())
        return Option.none()
      }
      const entry = yield* newEntry(state.right)
      live.set(session, entry)
      yield* Deferred.succeed(loading, Option.some(entry))
      return Option.some(entry)
    })

  const offerTo = (entry: Entry, input: Input, by: Actor) =>
    Effect.gen(function* () {
      const done = yield* Deferred.make<Ack, Rejection | StoreError>()
      yield* Queue.offer(entry.queue, { input, by, done })
      return done
    })
  const enqueue = (entry: Entry, input: Input, by: Actor) => Effect.flatMap(offerTo(entry, input, by), Deferred.await)

  const unknown = (session: string) => new Rejection({ code: "unknown_session", message: `session ${session} does not exist` })

  /** The entry to queue on: looked up again when an eviction raced the lookup. */
  const liveEntry = (session: string) =>
    Effect.gen(function* () {
      for (;;) {
        const entry = yield* entryOf(session)
        if (Option.isNone(entry)) return yield* Effect.fail(unknown(session))
        if (!entry.value.evicted) return entry.value
      }
    })

  const offer = (session: string, input: Input, by: Actor) => Effect.flatMap(liveEntry(session), (entry) => offerTo(entry, input, by))

  const report = (session: string, input: Input, by: Actor) =>
    Effect.flatMap(liveEntry(session), (entry) => Queue.offer(entry.queue, { input, by, done: null }))

  const submit = Effect.fn("SessionWriter.submit")(function* (session: string, input: Input, by: Actor) {
    return yield* Deferred.await(yield* offer(session, input, by))
  })

  /** A fresh entry for a session id nobody has used; its first append decides whether it exists. */
  const fresh = (session: string) =>
    Effect.gen(function* () {
      const entry = yield* newEntry(initialState(session))
      const d = yield* Deferred.make<Option.Option<Entry>, StoreError>()
      yield* Deferred.succeed(d, Option.some(entry))
      entries.set(session, d)
      live.set(session, entry)
      return entry
    })

  const newId = Effect.sync(() => crypto.randomUUID().replaceAll("-", "").slice(0, 16))

  const create = Effect.fn("SessionWriter.create")(function* (opts?: { readonly title?: string }) {
    const session = yield* newId
    const entry = yield* fresh(session)
    yield* enqueue(entry, { type: "create", ...(opts?.title !== undefined ? { title: opts.title } : {}) }, "system").pipe(
      Effect.catchTag("Rejection", (r) => Effect.dieMessage(`a new session was refused: ${r.message}`))
    )
    return session
  })

  const adopt = Effect.fn("SessionWriter.adopt")(function* (
    tape: ReadonlyArray<Envelope>,
    opts: { readonly reason: "fork" | "import"; readonly forkedFrom?: { readonly session: string; readonly seq: number } }
  ) {
    const first = tape[0]
    if (!first || first.type !== "SessionCreated") {
      return yield* Effect.fail(new Rejection({ code: "bad_tape", message: "a tape must start with SessionCreated" }))
    }
    for (let i = 0; i < tape.length; i++) {
      if (tape[i]!.seq !== i + 1) {
        return yield* Effect.fail(new Rejection({ code: "bad_tape", message: `seq must run 1, 2, 3… without gaps; event ${i + 1} has seq ${tape[i]!.seq}` }))
      }
    }
    const session = yield* newId
    const copied = tape.map((e, i): Envelope =>
      i === 0 && e.type === "SessionCreated" && opts.forkedFrom ? { ...e, session, forkedFrom: opts.forkedFrom } : { ...e, session }
    )
    const state = fold(session, copied)
    yield* store.append(session, 0, copied, summaryView(state)).pipe(
      Effect.catchTag("AppendConflict", (c) => Effect.fail(new StoreError({ message: `new session ${session} already existed`, session, cause: c })))
    )
    yield* bus.publish(copied)
    const entry = yield* fresh(session)
    entry.state = state
    entry.lastAt = state.counters.updatedAt
    yield* enqueue(entry, { type: "close_open", reason: opts.reason, cancelApproved: true, settle: false }, "system").pipe(
      Effect.catchTag("Rejection", () => Effect.void)
    )
    return session
  })

  const inspect = <A>(session: string, f: (s: SessionState) => A) =>
    Effect.gen(function* () {
      const entry = yield* entryOf(session)
      if (Option.isNone(entry)) return yield* Effect.fail(unknown(session))
      const e = entry.value
      // Other processes may have appended (PostgreSQL): read what they did before answering.
      return yield* e.lock.withPermits(1)(Effect.zipRight(catchUp(session, e), Effect.sync(() => f(e.state))))
    })

  const evictIdle = (olderThanMs: number) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      let n = 0
      for (const [session, entry] of live) {
        if (now - entry.lastUsed < olderThanMs) continue
        if ((yield* Queue.size(entry.queue)) > 0) continue
        // A batch being decided or appended is not in the queue any more: leave that session alone. A session with a
        // turn or tool call in flight will be written again soon: keep it too.
        if (entry.busy || isBusy(entry.state)) continue
        entry.evicted = true
        entries.delete(session)
        live.delete(session)
        if (entry.fiber) yield* Fiber.interrupt(entry.fiber)
        n++
      }
      return n
    })

  return SessionWriter.of({ submit, offer, report, takeLocal, create, adopt, inspect, droppedReports: () => dropped, evictIdle })
})

export const layer = Layer.scoped(SessionWriter, make)
