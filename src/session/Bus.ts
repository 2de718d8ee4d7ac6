/**
 * The Bus: fan-out of committed envelopes to live subscribers, gapless and without duplicates per session.
 * Never the source of truth: a subscriber that lags or drops events heals by reading the EventStore. Never blocks the writer.
 */
import { Chunk, Context, Effect, Layer, Option, Queue, type Scope, Stream } from "effect"
import type { Envelope } from "../domain/Event.ts"
import { EventStore, type EventStoreShape, type StoreError } from "../store/EventStore.ts"

/** Counters for tests and diagnostics. */
export interface BusStats {
  /** Subscribers registered now. */
  readonly subscribers: number
  /** Envelopes not delivered live because a subscriber's buffer was full (each later read from the store). */
  readonly dropped: number
  /** Store reads made to fill a gap (lag, drop or a late live event). */
  readonly heals: number
}

/** The Bus service interface. */
export interface BusShape {
  /**
   * Offers committed envelopes to every matching subscriber. Call only after the append succeeded, in seq order per session.
   * Never blocks: a subscriber whose buffer is full misses them live and reads them from the store later.
   */
  readonly publish: (events: ReadonlyArray<Envelope>) => Effect.Effect<void>
  /**
   * Offers envelopes that another process committed (read back from the store) to the subscribers of their session
   * only — never to `subscribeAll`, whose consumers (the runners) act on this process's appends. Duplicates are dropped.
   */
  readonly publishRemote: (events: ReadonlyArray<Envelope>) => Effect.Effect<void>
  /** Sessions that have at least one session subscriber now (what a cross-process feed must keep fresh). */
  readonly watchedSessions: () => ReadonlyArray<string>
  /**
   * Every envelope of `session` with seq > `afterSeq`, in seq order, with no gap and no duplicate: first read from the
   * store (catch-up), then live. The subscription is registered when the stream starts, before the catch-up read.
   */
  readonly subscribe: (session: string, afterSeq: number) => Stream.Stream<Envelope, StoreError>
  /**
   * Live envelopes of every session from the moment this effect runs (registration is immediate; the stream may be
   * consumed later). Per session, gapless and in order from the first envelope seen; unsubscribes when the scope closes.
   */
  readonly subscribeAll: Effect.Effect<Stream.Stream<Envelope, StoreError>, never, Scope.Scope>
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

interface Subscriber {
  /** The one session it follows, or undefined for all. */
  readonly session: string | undefined
  readonly queue: Queue.Queue<Envelope>
  /** Per session, the first seq that could not be buffered since the consumer last looked. */
  dropped: Map<string, number>
}

/** Reads every event of `session` after `last.get(session)` from the store, in pages, and advances `last`. */
const readRest = (
  store: EventStoreShape,
  pageSize: number,
  session: string,
  last: Map<string, number>,
  out: Array<Envelope>
): Effect.Effect<void, StoreError> =>
  Effect.gen(function*() {
    for (;;) {
      const page = yield* store.read(session, last.get(session) ?? 0, pageSize)
      for (const event of page) out.push(event)
      const tail = page[page.length - 1]
      if (tail !== undefined) last.set(session, tail.seq)
      if (page.length < pageSize) return
    }
  })

/** Builds a Bus over the EventStore in context. */
export const makeBus = (options: BusOptions = {}): Effect.Effect<BusShape, never, EventStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const capacity = Math.max(1, options.capacity ?? 1024)
    const pageSize = Math.max(1, options.pageSize ?? 1000)
    const subscribers = new Set<Subscriber>()
    let dropped = 0
    let heals = 0

    yield* Effect.addFinalizer(() =>
      Effect.forEach([...subscribers], (subscriber) => Queue.shutdown(subscriber.queue), { discard: true })
    )

    const register = (session: string | undefined) =>
      Effect.acquireRelease(
        Effect.map(Queue.dropping<Envelope>(capacity), (queue) => {
          const subscriber: Subscriber = { session, queue, dropped: new Map() }
          subscribers.add(subscriber)
          return subscriber
        }),
        (subscriber) =>
          Effect.suspend(() => {
            subscribers.delete(subscriber)
            return Queue.shutdown(subscriber.queue)
          })
      )

    const offer = (events: ReadonlyArray<Envelope>, toAll: boolean) =>
      Effect.sync(() => {
        for (const event of events) {
          for (const subscriber of subscribers) {
            if (subscriber.session === undefined ? !toAll : subscriber.session !== event.session) continue
            if (!subscriber.queue.unsafeOffer(event)) {
              dropped++
              if (!subscriber.dropped.has(event.session)) subscriber.dropped.set(event.session, event.seq)
            }
          }
        }
      })

    const publish = (events: ReadonlyArray<Envelope>) => offer(events, true)
    const publishRemote = (events: ReadonlyArray<Envelope>) => offer(events, false)
    const watchedSessions = () => {
      const sessions = new Set<string>()
      for (const subscriber of subscribers) if (subscriber.session !== undefined) sessions.add(subscriber.session)
      return [...sessions]
    }

    const heal = (session: string, last: Map<string, number>, out: Array<Envelope>) => {
      heals++
      return readRest(store, pageSize, session, last, out)
    }

    /** Turns one batch taken from the buffer into what the consumer must see, reading the store across any gap. */
    const deliver = (subscriber: Subscriber, last: Map<string, number>, batch: Chunk.Chunk<Envelope>) =>
      Effect.gen(function*() {
        // Taken after the batch: every drop before this point is in `lost`; a later drop found the buffer full, so the
        // next take returns at once and sees it.
        const lost = subscriber.dropped
        subscriber.dropped = new Map()
        for (const [session, firstLost] of lost) {
          if (last.has(session)) continue
          // A live-only subscriber that never saw this session starts right before what it missed or first holds.
          let floor = firstLost
          for (const event of batch) if (event.session === session && event.seq < floor) floor = event.seq
          last.set(session, floor - 1)
        }
        const out: Array<Envelope> = []
        for (const event of batch) {
          const seen = last.get(event.session)
          if (seen === undefined) {
            last.set(event.session, event.seq)
            out.push(event)
          } else if (event.seq === seen + 1) {
            last.set(event.session, event.seq)
            out.push(event)
          } else if (event.seq > seen + 1) {
            // Committed before it was published, so the store holds the gap and this event too.
            yield* heal(event.session, last, out)
          }
        }
        for (const session of lost.keys()) yield* heal(session, last, out)
        return Chunk.unsafeFromArray(out)
      })

    const live = (subscriber: Subscriber, last: Map<string, number>) =>
      Stream.repeatEffectChunk(
        Effect.flatMap(Queue.takeBetween(subscriber.queue, 1, 4096), (batch) => deliver(subscriber, last, batch))
      )

    const subscribe = (session: string, afterSeq: number): Stream.Stream<Envelope, StoreError> =>
      Stream.unwrapScoped(
        Effect.map(register(session), (subscriber) => {
          const last = new Map([[session, Math.max(0, afterSeq)]])
          let caughtUp = false
          const catchUp = Stream.repeatEffectChunkOption(
            Effect.suspend(() => {
              if (caughtUp) return Effect.fail(Option.none())
              return Effect.map(
                Effect.mapError(store.read(session, last.get(session) ?? 0, pageSize), Option.some),
                (page) => {
                  const tail = page[page.length - 1]
                  if (tail !== undefined) last.set(session, tail.seq)
                  if (page.length < pageSize) caughtUp = true
                  return Chunk.unsafeFromArray(page)
                }
              )
            })
          )
          return Stream.concat(catchUp, live(subscriber, last))
        })
      ).pipe(Stream.withSpan("Bus.subscribe", { attributes: { session, afterSeq } }))

    const subscribeAll = Effect.map(register(undefined), (subscriber) => live(subscriber, new Map()))

    const stats = Effect.sync((): BusStats => ({ subscribers: subscribers.size, dropped, heals }))

    return { publish, publishRemote, watchedSessions, subscribe, subscribeAll, stats } satisfies BusShape
  })

/** The Bus over the EventStore, with default buffers. */
export const layer: Layer.Layer<Bus, never, EventStore> = Layer.scoped(Bus, makeBus())

/** The Bus with explicit options (tests use a tiny capacity to force healing). */
export const layerWith = (options: BusOptions): Layer.Layer<Bus, never, EventStore> => Layer.scoped(Bus, makeBus(options))
