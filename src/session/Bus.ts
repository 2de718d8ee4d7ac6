/**
 * The Bus: fan-out of committed envelopes to live subscribers, gapless and without duplicates per session.
 * Never the source of truth: a subscriber that lags or drops events heals by reading the EventStore. Never blocks the writer.
 */
import { Chunk, Context, Deferred, Duration, Effect, Exit, FiberMap, FiberSet, Layer, Mailbox, Option, Queue, Schedule, type Scope, Stream } from "effect"
import type { Envelope, JsonObject } from "../domain/Event.ts"
import type { LlmMemory } from "../domain/projections/memoryTypes.ts"
import { EventStore, type StoreError } from "../store/EventStore.ts"

/**
 * What a committed batch asks this process to run, made by the writer from the state right after the append: the
 * runner gets an immutable snapshot, never the writer's live state.
 */
export type Work =
  /** A model turn to stream: its prompt is the memory at its TurnStarted; `entry` picks a scripted model's entry. */
  | {
      readonly kind: "turn"
      readonly session: string
      readonly turnId: string
      readonly model: string
      readonly entry: number
      readonly prompt: LlmMemory
    }
  /**
   * A compaction to summarise (CompactionStarted): the memory's messages up to `upToSeq`, for the Summarize function
   * of `model`; `entry` is the session's compaction count (a scripted model's summary entry).
   */
  | {
      readonly kind: "summary"
      readonly session: string
      readonly upToSeq: number
      readonly model: string
      readonly entry: number
      readonly messages: LlmMemory
    }
  /** An approved tool call to run, with the args it runs with. */
  | { readonly kind: "call"; readonly session: string; readonly callId: string; readonly tool: string; readonly args: JsonObject }

/** The key of a session's turn or call in a runner's FiberMap. */
export const workKey = (session: string, id: string): string => `${session}\u0000${id}`

/** The lease (kind `turn`) of a compaction being summarised, and the compaction a lease key names, if it is one. */
export const summaryLeaseKey = (upToSeq: number): string => `summary-${upToSeq}`
export const compactionOfLease = (key: string): number | undefined => {
  const m = /^summary-([1-9][0-9]{0,15})$/.exec(key)
  return m === null ? undefined : Number(m[1])
}


/** Interrupts every fiber a runner holds, then records each one's work as abandoned with `abandon(session, id)`. */
export const stopEvery = (fibers: FiberMap.FiberMap<string>, abandon: (session: string, id: string) => Effect.Effect<void>) =>
  Effect.gen(function* () {
    const keys: Array<string> = []
    for (const [k] of fibers) keys.push(k)
    for (const k of keys) {
      yield* FiberMap.remove(fibers, k)
      const i = k.indexOf("\u0000")
      yield* abandon(k.slice(0, i), k.slice(i + 1))
    }
  })

/** How soon a runner's watch on its session reads again after the store refused a read. */
const CLOSE_WATCH_RETRY = Schedule.spaced(Duration.millis(500))

/**
 * Runs `effect` (a turn or a call this process runs) until it ends, or until an event of `session` after `afterSeq`
 * satisfies `closes`, whichever comes first: the close interrupts it (which aborts its HTTP request or stops its tool).
 * The events are the session's own gapless stream (healed from the store), so a close appended by another process is
 * seen however little of that commit the feed delivered here; a store read that fails is retried, never taken for a
 * close. The session counts as watched meanwhile (its subscription).
 */
export const untilClosed = (bus: BusShape, session: string, afterSeq: number, closes: (e: Envelope) => boolean) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A | void, E, R> => {
    const seen = { seq: afterSeq }
    const closed = Effect.suspend(() => bus.awaitClose(session, seen, closes)).pipe(
      Effect.retry(CLOSE_WATCH_RETRY),
      // The schedule never gives up, so no error comes out (for the type checker: none that ends the effect).
      Effect.catchAll(() => Effect.never),
      Effect.asVoid
    )
    return Effect.raceFirst(effect, closed)
  }

/** One committed append of one session, as the runners see it. */
export interface Committed {
  readonly session: string
  readonly events: ReadonlyArray<Envelope>
  /** `local`: this process appended it (its work is this process's to run); `remote`: read back from the store. */
  readonly origin: "local" | "remote"
  /** What this process must run (always empty for remote batches). */
  readonly work: ReadonlyArray<Work>
}

/** Counters for tests and diagnostics. */
export interface BusStats {
  /** Subscribers registered now. */
  readonly subscribers: number
  /** Envelopes not delivered live because a subscriber's buffer was full (each later read from the store). */
  readonly dropped: number
  /** Store reads made to fill a gap (lag, drop or a late live event). */
  readonly heals: number
}

/**
 * What a follower (`BusShape.follow`) hands its session's events to. Every callback runs inside `publish` or a store
 * read of the Bus, so it must be quick and must not block; one that throws stops that follower (`failed`), never the
 * writer that published.
 */
export interface FollowSink {
  /** The next event of the session: every one after `afterSeq` exactly once, in seq order, with no gap. */
  readonly event: (event: Envelope) => void
  /**
   * Whether the sink takes another event now. When it says no, the follower stops delivering live and the events go on
   * being stored; `resume` reads them from the store later (the sink's own backpressure, e.g. a socket's buffer).
   */
  readonly ready: () => boolean
  /** The follower stopped: the store refused a read, or the sink threw (`cause`); nothing more is delivered. */
  readonly failed: (reason: StoreError | { readonly _tag: "Defect"; readonly cause: unknown }) => void
}

/** A follower's handle: `resume` after the sink said it was not ready and now is (it reads what it missed from the store). */
export interface Following {
  readonly resume: () => void
}

/** The Bus service interface. */
export interface BusShape {
  /**
   * Offers one committed batch of this process (envelopes of one session, in seq order) and the work it asks for.
   * Call only after the append succeeded. Never blocks: a session subscriber whose buffer is full misses them live and
   * reads them from the store later; `subscribeCommitted` subscribers get every batch they select.
   */
  readonly publish: (events: ReadonlyArray<Envelope>, work?: ReadonlyArray<Work>) => Effect.Effect<void>
  /**
   * Offers envelopes that another process committed (read back from the store), with origin `remote` and no work.
   * Duplicates are dropped for session subscribers.
   */
  readonly publishRemote: (events: ReadonlyArray<Envelope>) => Effect.Effect<void>
  /**
   * Sessions someone here follows now (a client, or a runner's `untilClosed`): a cross-process feed keeps these fresh.
   */
  readonly watchedSessions: () => ReadonlyArray<string>
  /**
   * Every envelope of `session` with seq > `afterSeq`, in seq order, with no gap and no duplicate: first read from the
   * store (catch-up), then live. The subscription is registered when the stream starts, before the catch-up read.
   */
  readonly subscribe: (session: string, afterSeq: number) => Stream.Stream<Envelope, StoreError>
  /**
   * The same guarantee as `subscribe` (every event of `session` after `afterSeq`, in order, no gap, no duplicate),
   * handed to `sink` by plain calls: live events from inside `publish`, with no queue and no fiber woken per event
   * (the websocket bridge's path); the store is read only to catch up, across a gap, and after the sink's own pause.
   * Registered at once (before the catch-up read); follows until the scope closes.
   */
  readonly follow: (session: string, afterSeq: number, sink: FollowSink) => Effect.Effect<Following, never, Scope.Scope>
  /**
   * Every committed batch, local and remote, that `select` keeps, from the moment this effect runs (registration is
   * immediate; the stream may be consumed later), in publish order, never dropped (the runners' channel: `select`
   * should keep only batches with work or with events that stop work, so streamed deltas never queue here).
   * Unsubscribes when the scope closes.
   */
  readonly subscribeCommitted: (select: (batch: Committed) => boolean) => Effect.Effect<Stream.Stream<Committed>, never, Scope.Scope>
  /**
   * Succeeds once an event of `session` after `seen.seq` satisfies `closes`: first among those the store already holds,
   * then among those published, with every gap (a commit the feed delivered only in part) read from the store. `seen`
   * advances as events are checked (a retry after a failed read goes on from there). The test runs in `publish`, so
   * a watch wakes once, at the close, not for every delta; the session counts as watched meanwhile.
   */
  readonly awaitClose: (session: string, seen: { seq: number }, closes: (e: Envelope) => boolean) => Effect.Effect<void, StoreError>
  /** Current counters. */
  readonly stats: Effect.Effect<BusStats>
}

/** The Bus service tag. */
export class Bus extends Context.Tag("tape/Bus")<Bus, BusShape>() {}

/** Options of `makeBus`. */
export interface BusOptions {
  /** Live buffer per subscriber, in envelopes (default 1024); beyond it, envelopes are read back from the store. */
  readonly capacity?: number
  /** Page size of store reads during catch-up and healing (default 1000). */
  readonly pageSize?: number
}

/** One follower of one session (`follow`; `subscribe` is a follower with a buffer). */
interface Follower {
  readonly session: string
  readonly sink: FollowSink
  /** The seq of the last event handed to the sink. */
  last: number
  /**
   * `reading`: the store is being read (catch-up, a gap, or after a pause): live events are left to that read.
   * `live`: events are handed over as they are published. `paused`: the sink said it was not ready: events wait in the
   * store for `resume`. `stopped`: the store failed a read or the sink threw, or the follower's scope closed.
   */
  state: "reading" | "live" | "paused" | "stopped"
  /** An event was published while the store was being read: read again before going live. */
  missed: boolean
  /** Runs the follower's store reads (interrupted when its scope closes). */
  readonly fork: (effect: Effect.Effect<void>) => void
}

/** Builds a Bus over the EventStore in context. */
export const makeBus = (options: BusOptions = {}): Effect.Effect<BusShape, never, EventStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const capacity = Math.max(1, options.capacity ?? 1024)
    const pageSize = Math.max(1, options.pageSize ?? 1000)
    /** Followers by session (`follow`, and `subscribe` through it). */
    const followers = new Map<string, Set<Follower>>()
    let followerCount = 0
    const committed = new Set<{ readonly select: (batch: Committed) => boolean; readonly queue: Queue.Queue<Committed> }>()
    let dropped = 0
    let heals = 0

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const set of followers.values()) for (const f of set) f.state = "stopped"
      }).pipe(Effect.zipRight(Effect.forEach([...committed], (c) => Queue.shutdown(c.queue), { discard: true })))
    )

    /** Stops `f` because its sink threw (or its `failed` did): the writer that published goes on. */
    const sinkThrew = (f: Follower, cause: unknown): void => {
      f.state = "stopped"
      try {
        f.sink.failed({ _tag: "Defect", cause })
      } catch {
        // Nothing more can be told to a sink that throws on being told it failed.
      }
    }

    /** Hands `event` (the one after `f.last`) to the sink; false when the follower paused or stopped instead. */
    const handOver = (f: Follower, event: Envelope): boolean => {
      try {
        if (!f.sink.ready()) {
          f.state = "paused"
          dropped++
          return false
        }
        f.last = event.seq
        f.sink.event(event)
        return true
      } catch (cause) {
        sinkThrew(f, cause)
        return false
      }
    }

    /**
     * Reads what the store holds after `f.last` and hands it over, then goes live; an event published meanwhile makes
     * it read once more before going live (so nothing falls between the read and the live feed).
     */
    const readThenLive = (f: Follower): Effect.Effect<void> =>
      Effect.gen(function*() {
        for (;;) {
          f.missed = false
          for (;;) {
            const page = yield* store.read(f.session, f.last, pageSize)
            for (const event of page) {
              if (f.state !== "reading") return
              if (event.seq <= f.last) continue
              if (!handOver(f, event)) return
            }
            if (page.length < pageSize) break
          }
          if (f.state !== "reading") return
          if (!f.missed) {
            f.state = "live"
            return
          }
        }
      }).pipe(
        Effect.catchAll((error) =>
          Effect.sync(() => {
            if (f.state === "stopped") return
            f.state = "stopped"
            try {
              f.sink.failed(error)
            } catch (cause) {
              sinkThrew(f, cause)
            }
          })
        )
      )

    /** Starts a store read for `f` (a gap, or a resume after a pause). */
    const healFollower = (f: Follower): void => {
      heals++
      f.state = "reading"
      f.fork(readThenLive(f))
    }

    /** Offers one published event to the followers of its session. */
    const toFollowers = (event: Envelope): void => {
      const set = followers.get(event.session)
      if (set === undefined) return
      for (const f of set) {
        switch (f.state) {
          case "live":
            if (event.seq <= f.last) break
            if (event.seq === f.last + 1) handOver(f, event)
            // Committed before it was published, so the store holds the gap and this event too.
            else healFollower(f)
            break
          case "reading":
            f.missed = true
            break
          case "paused":
            dropped++
            break
          case "stopped":
            break
        }
      }
    }

    const offer = (events: ReadonlyArray<Envelope>, origin: Committed["origin"], work: ReadonlyArray<Work>) =>
      Effect.sync(() => {
        if (followerCount > 0) for (const event of events) toFollowers(event)
        const first = events[0]
        if (first === undefined || committed.size === 0) return
        const batch: Committed = { session: first.session, events, origin, work }
        for (const c of committed) if (c.select(batch)) c.queue.unsafeOffer(batch)
      })

    const follow = (session: string, afterSeq: number, sink: FollowSink): Effect.Effect<Following, never, Scope.Scope> =>
      Effect.gen(function*() {
        const fibers = yield* FiberSet.make<void, never>()
        const runFork = yield* FiberSet.runtime(fibers)<never>()
        const f: Follower = {
          session,
          sink,
          last: Math.max(0, afterSeq),
          state: "reading",
          missed: false,
          fork: (effect) => {
            runFork(effect)
          }
        }
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            const same = followers.get(session)
            if (same) same.add(f)
            else followers.set(session, new Set([f]))
            followerCount++
          }),
          () =>
            Effect.sync(() => {
              f.state = "stopped"
              const same = followers.get(session)
              same?.delete(f)
              if (same?.size === 0) followers.delete(session)
              followerCount--
            })
        )
        // Registered first, so an event published while the catch-up reads is noticed (`missed`).
        f.fork(readThenLive(f))
        return {
          resume: () => {
            if (f.state === "paused") healFollower(f)
          }
        }
      })

    const publish = (events: ReadonlyArray<Envelope>, work: ReadonlyArray<Work> = []) => offer(events, "local", work)
    const publishRemote = (events: ReadonlyArray<Envelope>) => offer(events, "remote", [])
    const watchedSessions = () => [...followers.keys()]

    /** A close watch is a follower whose sink tests each event: it wakes once, at the close, not for every delta. */
    const awaitClose = (session: string, seen: { seq: number }, closes: (e: Envelope) => boolean) =>
      Effect.scoped(
        Effect.gen(function*() {
          const done = yield* Deferred.make<void, StoreError>()
          yield* follow(session, seen.seq, {
            event: (event) => {
              seen.seq = event.seq
              if (closes(event)) Deferred.unsafeDone(done, Exit.void)
            },
            ready: () => true,
            failed: (reason) => {
              Deferred.unsafeDone(done, reason._tag === "StoreError" ? Exit.fail(reason) : Exit.die(reason.cause))
            }
          })
          yield* Deferred.await(done)
        })
      )

    /**
     * A follower whose sink is a buffer of `capacity` events, read as a stream: a consumer that lags past it pauses the
     * follower, which reads what it missed from the store once the consumer takes again.
     */
    const subscribe = (session: string, afterSeq: number): Stream.Stream<Envelope, StoreError> =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          const buffer = yield* Mailbox.make<Envelope, StoreError>()
          const following = yield* follow(session, afterSeq, {
            event: (event) => {
              buffer.unsafeOffer(event)
            },
            ready: () => Option.getOrElse(buffer.unsafeSize(), () => 0) < capacity,
            failed: (reason) => {
              buffer.unsafeDone(reason._tag === "StoreError" ? Exit.fail(reason) : Exit.die(reason.cause))
            }
          })
          const pull = Effect.map(buffer.takeAll, ([events, done]) => {
            following.resume()
            return [events, done] as const
          })
          return Stream.repeatEffectChunkOption(
            Effect.flatMap(Effect.mapError(pull, Option.some), ([events, done]) =>
              done && Chunk.isEmpty(events) ? Effect.fail(Option.none()) : Effect.succeed(events)
            )
          )
        })
      ).pipe(Stream.withSpan("Bus.subscribe", { attributes: { session, afterSeq } }))

    const subscribeCommitted = (select: (batch: Committed) => boolean) =>
      Effect.map(
        Effect.acquireRelease(
          Effect.map(Queue.unbounded<Committed>(), (queue) => {
            const c = { select, queue }
            committed.add(c)
            return c
          }),
          (c) =>
            Effect.suspend(() => {
              committed.delete(c)
              return Queue.shutdown(c.queue)
            })
        ),
        (c) => Stream.fromQueue(c.queue)
      )

    const stats = Effect.sync((): BusStats => ({ subscribers: followerCount + committed.size, dropped, heals }))

    return { publish, publishRemote, watchedSessions, subscribe, follow, subscribeCommitted, awaitClose, stats } satisfies BusShape
  })

/** The Bus over the EventStore, with default buffers. */
export const layer: Layer.Layer<Bus, never, EventStore> = Layer.scoped(Bus, makeBus())

/** The Bus with explicit options (tests use a tiny capacity to force healing). */
export const layerWith = (options: BusOptions): Layer.Layer<Bus, never, EventStore> => Layer.scoped(Bus, makeBus(options))
