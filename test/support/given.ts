/**
 * Emmett-style specs for `decide` (given/when/then): the package's own helpers (`agent-tape/testing`), over the
 * tests' two-tool context unless a spec gives its own.
 */
import type { DecideContext } from "../../src/domain/decide.ts"
import { type Given, given as givenWith } from "../../src/testing.ts"
import { testContext } from "./context.ts"

export { foldGiven, type Given, type Outcome, type Then } from "../../src/testing.ts"

export const given = (history: ReadonlyArray<Given>, ctx: DecideContext = testContext) => givenWith(history, ctx)
