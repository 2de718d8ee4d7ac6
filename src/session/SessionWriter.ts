/**
 * SessionWriter: the one writer of every session. A serial queue per session: decide → append (expected head) → evolve
 * → publish on the Bus, with the work the batch asks for. Inputs that arrive in the same tick are decided in order and
 * appended as one batch. Owns session state; never hands it out (runners get immutable work items on the Bus).
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Either, Fiber, FiberSet, Layer, Option, Queue, Random, Schedule } from "effect"
import { foldStrict } from "../domain/admissible.ts"
import { type Input, MAX_TITLE_CHARS, Rejection } from "../domain/Command.ts"
import { type DecideContext, decide, type Decision } from "../domain/decide.ts"
import { type Actor, canonicalEnvelope, type Draft, type Envelope } from "../domain/Event.ts"
import { memoryUpTo, promptFor } from "../domain/projections/memory.ts"
import { summaryView } from "../domain/projections/summary.ts"
import { evolve, fold, initialState, isBusy, type SessionState } from "../domain/state.ts"
import { EventStore, StoreError } from "../store/EventStore.ts"
import { Bus, type Work } from "./Bus.ts"

/** The reply to one input: the head right after its events (the seq of its last one) and the events it appended. */
export interface Ack {
  readonly head: number
  readonly events: ReadonlyArray<Envelope>
}

/** How a copied tape becomes a session (fork or import). */
export interface AdoptOptions {
  readonly reason: "fork" | "import"
  /** For a fork: the source session and the last seq copied. */
  readonly forkedFrom?: { readonly session: string; readonly seq: number }
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
   * Creates a new session whose tape is `tape` (envelopes of one session, seq 1..N), checked event by event against
   * the rules of the live writer (`foldStrict`), and closes what was open at its end (reason `fork` / `import`) in the
   * same one append: the model is never called for the copied prefix, and no approval of the copied tape runs a tool
   * here (such calls await a new approval).
   */
  readonly adopt: (tape: ReadonlyArray<Envelope>, opts: AdoptOptions) => Effect.Effect<string, Rejection | StoreError>
  /**
   * Runs `f` on the session's state, brought up to the store's head first, while no batch is being decided
   * (so it never sees unstored events). `f` must not keep references. For the reaper and tests, never for runners.
   */
  readonly inspect: <A>(session: string, f: (s: SessionState) => A) => Effect.Effect<A, Rejection | StoreError>
  /**
   * Deletes a session that runs nothing (a user's delete): its tape and summary leave the store and its state leaves
   * memory; inputs still queued for it are refused as unknown. A session with a turn or call in flight is refused
   * (`busy`): stop it first.
   */
  readonly remove: (session: string) => Effect.Effect<void, Rejection | StoreError>
  /** Reports for turns or calls no longer active, dropped since start (rule 5). */
  readonly droppedReports: () => number
  /** Drops idle sessions' state from memory (it is reloaded from the store on next use). */
  readonly evictIdle: (olderThanMs: number) => Effect.Effect<number>
}

export class SessionWriter extends Context.Tag("tape/SessionWriter")<SessionWriter, SessionWriterShape>() {}

/** The model name, tool catalogue and loop limits `decide` needs. */
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
  /** Set after a conflict or a failed write: read what the store holds before deciding again. */
  shared: boolean
  /** Held while a batch is decided and appended, and while `inspect` reads: readers never see unstored events. */
  readonly lock: Effect.Semaphore
}

/** Appends retried on a concurrent writer's conflict (other processes on PostgreSQL), with capped jittered backoff. */
const CONFLICT_RETRIES = 40
const BACKOFF_CAP_MS = 50
const MAX_BATCH = 512
/**
 * How a repair retries while the store refuses writes: from 100 ms, doubling, at most 5 s apart, jittered, in whole
 * milliseconds (TestClock moves to each wake-up, and a span's start must be a whole number of nanoseconds).
 */
const REPAIR_RETRY = Schedule.exponential(Duration.millis(100), 2).pipe(
  Schedule.union(Schedule.spaced(Duration.seconds(5))),
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.millis(Math.round(Duration.toMillis(delay))))
)
/** Characters of an unexpected error kept in its nack and its one log line. */
const INTERNAL_DETAIL_CHARS = 300

const isReport = (input: Input): boolean =>
  input.type.startsWith("model_") || input.type.startsWith("tool_")

/** A thrown value as one short line (never its whole stack, never unbounded). */
const shortCause = (cause: unknown): string => {
  const text = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)
  return text.length > INTERNAL_DETAIL_CHARS ? `${text.slice(0, INTERNAL_DETAIL_CHARS)}…` : text
}

const internal = (input: Input, detail: string) =>
  new Rejection({ code: "internal", message: `the server could not handle this ${input.type}: ${detail}` })

/** The envelope of a draft at `seq`, in the one key order of every envelope. */
const envelopeOf = (draft: Draft, session: string, seq: number, at: number): Envelope => canonicalEnvelope({ ...draft, session, seq, at })

/** Immutable work for the runners: the turns still streaming and the calls still approved after this batch. */
const workOf = (state: SessionState, events: ReadonlyArray<Envelope>, defaultModel: string): Array<Work> => {
  const work: Array<Work> = []
  for (const e of events) {
    if (e.type === "TurnStarted" && state.interrupts.streaming === e.turnId) {
      const entry = state.counters.entries.get(e.turnId) ?? 0
      work.push({ kind: "turn", session: e.session, turnId: e.turnId, model: e.model, entry, prompt: promptFor(state, e.turnId) })
    } else if (e.type === "CompactionStarted" && state.interrupts.compacting?.seq === e.seq) {
      const model = state.counters.model ?? defaultModel
      const entry = state.interrupts.compactions - 1
      work.push({ kind: "summary", session: e.session, upToSeq: e.upToSeq, model, entry, messages: memoryUpTo(state, e.upToSeq) })
    } else if (e.type === "ToolCallApproved") {
      const call = state.commands.calls.get(e.callId)
      if (call?.status === "approved") work.push({ kind: "call", session: e.session, callId: e.callId, tool: call.tool, args: call.args })
    }
  }
  return work
}

/** The title a copied tape gets: its own, marked as a fork at N or as imported (issue 13). */
const copyTitle = (tape: ReadonlyArray<Envelope>, opts: AdoptOptions): string => {
  const mark = opts.reason === "fork" ? ` (fork @${opts.forkedFrom?.seq ?? tape.length})` : " (imported)"
  const base = (fold("title", tape).counters.title ?? "New session").replace(/ \((?:fork @\d+|imported)\)$/, "")
  return `${base.slice(0, MAX_TITLE_CHARS - mark.length)}${mark}`
}

export const make = Effect.gen(function* () {
  const store = yield* EventStore
  const bus = yield* Bus
  const ctx = yield* WriterContext
  const entries = new Map<string, Deferred.Deferred<Option.Option<Entry>, StoreError>>()
  /** Loaded entries, for eviction. */
  const live = new Map<string, Entry>()
  /** Background repairs of turns and calls whose reports a failed write lost. */
  const repairs = yield* FiberSet.make<void, never>()
  /** The turns and calls being repaired now (`session\0id`): one repair each, however many writes fail meanwhile. */
  const repairing = new Set<string>()
  let dropped = 0

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

  /** `decide`, with anything it throws turned into a rejection of that one input (logged once, briefly). */
  const decideSafely = (state: SessionState, p: Pending) =>
    Effect.suspend((): Effect.Effect<Decision> => {
      try {
        return Effect.succeed(decide(state, p.input, p.by, ctx))
      } catch (cause) {
        const detail = shortCause(cause)
        return Effect.as(
          Effect.logError(`decide threw on ${p.input.type} for ${state.session}: ${detail}`),
          Either.left(internal(p.input, detail))
        )
      }
    })

  /** Decides a batch in order against the live state, appends what it produced as one batch, then publishes. */
  const runBatch = (session: string, entry: Entry, batch: ReadonlyArray<Pending>) =>
    Effect.gen(function* () {
      if (entry.shared) yield* catchUp(session, entry)
      const base = entry.state.head
      const now = yield* Clock.currentTimeMillis
      // `at` never goes back: a clock that stepped back still stamps the last time seen.
      const at = Math.max(now, entry.lastAt)
      const appended: Array<Envelope> = []
      const results: Array<Either.Either<Ack, Rejection>> = []
      for (const p of batch) {
        const d = yield* decideSafely(entry.state, p)
        if (Either.isLeft(d)) {
          results.push(Either.left(d.left))
          continue
        }
        const events = d.right.map((draft, i) => envelopeOf(draft, session, entry.state.head + i + 1, at))
        for (const e of events) evolve(entry.state, e)
        appended.push(...events)
        results.push(Either.right({ head: entry.state.head, events }))
      }
      // A refusal must be decided on the store's head like an append, but unlike an append it cannot conflict: when
      // another process appended meanwhile (PostgreSQL), treat it as a conflict, so the batch is decided again on the
      // tape as stored (a call this writer had not seen approved is not "unknown").
      if (results.some(Either.isLeft) && (yield* store.head(session)) !== base) return false
      if (appended.length > 0) {
        const ok = yield* store.append(session, base, appended, summaryView(entry.state)).pipe(
          Effect.as(true),
          Effect.catchTag("AppendConflict", () => Effect.succeed(false))
        )
        if (!ok) return false
        entry.lastAt = at
        yield* bus.publish(appended, workOf(entry.state, appended, ctx.model))
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

  /**
   * A batch failed (the store refused it, or a defect): its reports are lost, so the turns and calls they were about
   * must end on the tape (rule: every turn ends). `why` says what failed. Retried until the store accepts the closing
   * event, or the turn or call is closed anyway.
   */
  const repair = (session: string, batch: ReadonlyArray<Pending>, why: string) =>
    Effect.gen(function* () {
      const turns = new Set<string>()
      const calls = new Set<string>()
      for (const p of batch) {
        const input = p.input
        if (input.type === "model_delta" || input.type === "model_tool_call" || input.type === "model_completed" || input.type === "model_failed") turns.add(input.turnId)
        else if (input.type === "tool_succeeded" || input.type === "tool_failed" || input.type === "tool_cancelled") calls.add(input.callId)
      }
      /** Each turn or call to close, with the input that closes it. */
      const closing: Array<readonly [string, Input]> = [
        ...[...turns].map((turnId) => [turnId, { type: "model_failed", turnId, error: `${why}; the reply may be incomplete`, retryable: true }] as const),
        ...[...calls].map((callId) => [callId, { type: "abandon_call", callId, reason: `${why}; its result was lost` }] as const)
      ]
      for (const [id, input] of closing) {
        // While the store is down, a repair's own attempts fail and every failed batch asks for a repair again: the one
        // in flight covers them all (without this, each failed attempt started another at once, and the writer spun
        // for as long as the outage lasted).
        const key = `${session}\u0000${id}`
        if (repairing.has(key)) continue
        repairing.add(key)
        yield* FiberSet.run(
          repairs,
          submit(session, input, "system").pipe(
            Effect.retry({ schedule: REPAIR_RETRY, while: (e) => e._tag === "StoreError" }),
            Effect.catchAll((e) => Effect.logDebug(`repair of ${session} (${input.type}) not needed: ${e.message}`)),
            Effect.asVoid,
            Effect.ensuring(Effect.sync(() => repairing.delete(key)))
          )
        )
      }
    })

  /** Runs a batch; on a conflict (another writer appended) or a failed append, reloads from the store and re-decides. */
  const process = (session: string, entry: Entry, batch: ReadonlyArray<Pending>) =>
    Effect.gen(function* () {
      for (let attempt = 0; ; attempt++) {
        const result = yield* Effect.exit(runBatch(session, entry, batch))
        if (result._tag === "Success" && result.value) return
        // The live state may hold events that were not stored: rebuild it from the store before anything else (if the
        // store cannot be read now, the next batch reads the whole tape first).
        const reloaded = yield* Effect.either(load(session))
        entry.state = Either.getOrElse(reloaded, () => initialState(session))
        entry.shared = true
        if (result._tag === "Failure") {
          const failure = Cause.failureOption(result.cause)
          if (Option.isSome(failure)) {
            const error = failure.value
            yield* Effect.logError(`append to ${session} failed; ${batch.length} input(s) not applied`, error)
            for (const p of batch) if (p.done) yield* Deferred.fail(p.done, error)
            yield* repair(session, batch, `the store refused a write (${shortCause(error.message)})`)
          } else {
            // A defect (a bug): each input gets an answer, the turns and calls it lost reports of end, the writer goes on.
            const detail = shortCause(Cause.squash(result.cause))
            yield* Effect.logError(`writer of ${session} failed a batch: ${detail}`)
            for (const p of batch) if (p.done) yield* Deferred.fail(p.done, internal(p.input, detail))
            yield* repair(session, batch, `the server failed on a write (${detail})`)
          }
          return
        }
        if (attempt >= CONFLICT_RETRIES) {
          const error = new StoreError({ message: `append to ${session} kept conflicting with other writers`, session })
          yield* Effect.logError(error.message)
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
        }))
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

  /**
   * A session loaded here gets the report straight into its queue, with no effect of its own: a streamed reply reports
   * once per socket read, and the lookup's effects (a gen, the entry's Deferred, the offer) were most of the runner's
   * work per chunk. Otherwise (not loaded, being loaded, evicted) the lookup as for any input.
   */
  const report = (session: string, input: Input, by: Actor) =>
    Effect.suspend(() => {
      const entry = live.get(session)
      // The queue is unbounded and never shut down (an evicted entry leaves `live` first), so the offer always succeeds.
      if (entry !== undefined && !entry.evicted && entry.queue.unsafeOffer({ input, by, done: null })) return Effect.void
      return Effect.flatMap(liveEntry(session), (e) => Queue.offer(e.queue, { input, by, done: null }))
    })

  const submit = (session: string, input: Input, by: Actor): Effect.Effect<Ack, Rejection | StoreError> =>
    Effect.flatMap(offer(session, input, by), Deferred.await).pipe(Effect.withSpan("SessionWriter.submit"))

  /** A fresh entry for a session id nobody has used, holding `state`. */
  const fresh = (session: string, state: SessionState = initialState(session)) =>
    Effect.gen(function* () {
      const entry = yield* newEntry(state)
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

  const badTape = (message: string) => new Rejection({ code: "bad_tape", message })

  const adopt = Effect.fn("SessionWriter.adopt")(function* (tape: ReadonlyArray<Envelope>, opts: AdoptOptions) {
    const first = tape[0]
    if (!first || first.type !== "SessionCreated") return yield* badTape("a tape must start with SessionCreated")
    const session = yield* newId
    const title = copyTitle(tape, opts)
    const origin = opts.reason === "fork" ? { forkedFrom: opts.forkedFrom ?? { session: first.session, seq: tape.length } } : { importedFrom: { session: first.session, seq: tape.length } }
    const copied = tape.map((e, i): Envelope => {
      if (i > 0 || e.type !== "SessionCreated") return canonicalEnvelope({ ...e, session })
      const { forkedFrom: _f, importedFrom: _i, title: _t, ...rest } = e
      return canonicalEnvelope({ ...rest, session, title, ...origin })
    })
    // A fork copies this server's own tape: its calls were checked when they were appended, against a catalogue that
    // may have changed since; an import is checked against this server's tools.
    const checkTool = opts.reason === "fork" ? () => ({ ok: true as const, args: {}, policy: "ask" as const }) : ctx.checkTool
    const strict = foldStrict(session, copied, { checkTool })
    if ("refused" in strict) {
      const r = strict.refused
      return yield* badTape(`event ${r.index} (seq ${r.seq}, ${r.type}) cannot be on a tape: ${r.reason}`)
    }
    const state = strict.state
    // Closing what was open is part of the same one append: no moment exists where the copied prefix is stored open.
    const closing = decide(state, { type: "close_open", reason: opts.reason, approved: "reopen", settle: false }, "system", ctx)
    const closes = Either.getOrElse(closing, () => [])
    // A rename in the copied tape would override the copy's marked title: the copy's own rename comes last.
    const renamed = copied.some((e) => e.type === "SessionRenamed")
    const drafts: ReadonlyArray<Draft> = renamed ? [...closes, { type: "SessionRenamed", title, by: "system" }] : closes
    const now = yield* Clock.currentTimeMillis
    const at = Math.max(now, copied[copied.length - 1]!.at)
    const closed = drafts.map((d, i) => envelopeOf(d, session, copied.length + i + 1, at))
    for (const e of closed) evolve(state, e)
    const all = [...copied, ...closed]
    yield* store.append(session, 0, all, summaryView(state)).pipe(
      Effect.catchTag("AppendConflict", (c) => Effect.fail(new StoreError({ message: `new session ${session} already existed`, session, cause: c })))
    )
    yield* bus.publish(all)
    const entry = yield* fresh(session, state)
    entry.lastAt = at
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

  /**
   * Takes an entry out of memory: its drain fiber stops. An input that slipped into its queue meanwhile is refused
   * when the session is gone, or queued again on a fresh entry when it was only evicted.
   */
  const forget = (session: string, entry: Entry, gone: boolean) =>
    Effect.gen(function* () {
      entry.evicted = true
      entries.delete(session)
      live.delete(session)
      if (entry.fiber) yield* Fiber.interrupt(entry.fiber)
      for (const p of yield* Queue.takeAll(entry.queue)) {
        if (gone) {
          if (p.done) yield* Deferred.fail(p.done, unknown(session))
        } else {
          yield* liveEntry(session).pipe(
            Effect.flatMap((fresh) => Queue.offer(fresh.queue, p)),
            Effect.catchAll((e) => (p.done ? Deferred.fail(p.done, e) : Effect.void))
          )
        }
      }
    })

  const remove = Effect.fn("SessionWriter.remove")(function* (session: string) {
    const entry = yield* liveEntry(session)
    yield* entry.lock.withPermits(1)(
      Effect.gen(function* () {
        yield* catchUp(session, entry)
        if (isBusy(entry.state)) {
          return yield* new Rejection({ code: "busy", message: "the session is running a turn or a tool call, or waits for an approval: stop it first" })
        }
        yield* store.remove(session)
      })
    )
    yield* forget(session, entry, true)
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
        yield* forget(session, entry, false)
        n++
      }
      return n
    })

  return SessionWriter.of({ submit, offer, report, create, adopt, inspect, remove, droppedReports: () => dropped, evictIdle })
})

export const layer = Layer.scoped(SessionWriter, make)
