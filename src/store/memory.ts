/**
 * In-memory EventStore layer (tests, `TAPE_STORE=memory`): Maps of tapes and summaries, gone on exit.
 * Same checks as the SQL layers; each append is one synchronous step, so it is atomic.
 */
import { Effect, Layer, Option } from "effect"
import type { Envelope } from "../domain/Event.ts"
import type { SessionSummary } from "../domain/projections/summaryTypes.ts"
import { checkBatch } from "./codec.ts"
import { AppendConflict, EventStore, type EventStoreShape } from "./EventStore.ts"

/** Builds a fresh in-memory store. */
export const makeMemory: Effect.Effect<EventStoreShape> = Effect.sync(() => {
  const tapes = new Map<string, Array<Envelope>>()
  const summaries = new Map<string, SessionSummary>()

  const append = Effect.fn("EventStore.append")(function*(
    session: string,
    expectedHead: number,
    events: ReadonlyArray<Envelope>,
    summary: SessionSummary
  ) {
    const checked = yield* checkBatch(session, expectedHead, events, summary)
    yield* Effect.suspend(() => {
      const tape = tapes.get(session) ?? []
      if (tape.length !== expectedHead) {
        return Effect.fail(new AppendConflict({ session, expected: expectedHead, actual: tape.length }))
      }
      for (const envelope of checked) tape.push(envelope)
      tapes.set(session, tape)
      summaries.set(session, summary)
      return Effect.void
    })
  })

  const read = Effect.fn("EventStore.read")((session: string, afterSeq: number, limit?: number) =>
    Effect.sync(() => {
      const tape = tapes.get(session) ?? []
      const from = Math.max(0, afterSeq)
      return tape.slice(from, limit === undefined ? undefined : from + Math.max(0, limit))
    })
  )

  const byUpdated = (a: SessionSummary, b: SessionSummary) =>
    b.updatedAt - a.updatedAt || (a.session < b.session ? -1 : a.session > b.session ? 1 : 0)

  return {
    append,
    read,
    head: (session) => Effect.sync(() => tapes.get(session)?.length ?? 0).pipe(Effect.withSpan("EventStore.head")),
    summary: (session) =>
      Effect.sync(() => Option.fromNullable(summaries.get(session))).pipe(Effect.withSpan("EventStore.summary")),
    openSessions: (phases) =>
      Effect.sync(() => [...summaries.values()].filter((s) => phases.includes(s.phase))).pipe(Effect.withSpan("EventStore.openSessions")),
    listSessions: (options = {}) =>
      Effect.sync(() => {
        const { before, limit } = options
        const title = options.title?.toLowerCase()
        const text = options.text?.toLowerCase()
        const said = (session: string, t: string) =>
          (tapes.get(session) ?? []).some((e) => (e.type === "UserMessageAdded" || e.type === "UserMessageQueued") && e.text.toLowerCase().includes(t))
        const page = [...summaries.values()]
          .filter((s) => before === undefined || s.updatedAt < before.updatedAt || (s.updatedAt === before.updatedAt && s.session > before.session))
          .filter((s) => title === undefined || s.title.toLowerCase().includes(title))
          .filter((s) => text === undefined || s.title.toLowerCase().includes(text) || said(s.session, text))
          .filter((s) => options.forkedFrom === undefined || s.forkedFrom?.session === options.forkedFrom)
          .sort(byUpdated)
        return limit === undefined ? page : page.slice(0, Math.max(0, Math.floor(limit)))
      }).pipe(Effect.withSpan("EventStore.listSessions")),
    remove: (session) =>
      Effect.sync(() => {
        const had = tapes.delete(session)
        return summaries.delete(session) || had
      }).pipe(Effect.withSpan("EventStore.remove")),
    sessionIds: () => Effect.sync(() => [...summaries.keys()]).pipe(Effect.withSpan("EventStore.sessionIds"))
  } satisfies EventStoreShape
})

/** EventStore kept in memory; each build of the layer starts empty. */
export const layerMemory: Layer.Layer<EventStore> = Layer.effect(EventStore, makeMemory)
