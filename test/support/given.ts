/**
 * Emmett-style specs for `decide`: `given(tape).when(input, by?).then(events | { rejected })`.
 * `given` folds events with the real reducers; `then` compares drafts by type and fields (never `at`/`seq`).
 */
import { expect } from "bun:test"
import { Either } from "effect"
import type { Input } from "../../src/domain/Command.ts"
import { type DecideContext, decide } from "../../src/domain/decide.ts"
import type { Actor, Draft, Envelope, Event } from "../../src/domain/Event.ts"
import { evolve, initialState, type SessionState } from "../../src/domain/state.ts"
import { testContext } from "./context.ts"

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
export const given = (history: ReadonlyArray<Given>, ctx: DecideContext = testContext) => ({
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
