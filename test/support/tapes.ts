/**
 * Tape fixtures for tests: load `test/tapes/<name>.jsonl` with the real parser, and `record` a tape by driving
 * the real `decide` + `evolve` through a script of inputs (how the fixtures were made). No I/O beyond reading fixtures.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Either } from "effect"
import type { Input } from "../../src/domain/Command.ts"
import { type DecideContext, decide } from "../../src/domain/decide.ts"
import type { Actor, Envelope } from "../../src/domain/Event.ts"
import { evolve, initialState, type SessionState } from "../../src/domain/state.ts"
import type { UiView } from "../../src/domain/projections/ui.ts"
import { parseTape } from "../../src/domain/tapeFile.ts"
import { testContext } from "./context.ts"

export const tapesDir = join(import.meta.dir, "..", "tapes")

/** The fixture names (file names without `.jsonl`), sorted. */
export const fixtureNames = (): ReadonlyArray<string> =>
  readdirSync(tapesDir)
    .filter((f) => f.endsWith(".jsonl"))
    .map((f) => f.slice(0, -".jsonl".length))
    .sort()

export const tapePath = (name: string): string => join(tapesDir, `${name}.jsonl`)

/** Reads and parses a fixture with the real schema; a broken fixture throws with the parser's message. */
export const loadTape = (name: string): ReadonlyArray<Envelope> => {
  const parsed = parseTape(readFileSync(tapePath(name), "utf8"))
  if (Either.isLeft(parsed)) throw new Error(`fixture ${name}: ${parsed.left.message}`)
  return parsed.right
}

/** Epoch ms of the first event of recorded tapes; each step is one second later. */
export const T0 = 1_700_000_000_000

/** One step of a recording: an input (or one computed from the state), who sends it, and an expected rejection. */
export interface Step {
  readonly input: Input | ((s: SessionState) => Input)
  readonly by: Actor
  /** When set, the step must be rejected with this code (and appends nothing). */
  readonly rejected?: string
}

/** Runs `steps` through decide + evolve as the writer would (one `at` per step); throws on a surprise. */
export const record = (
  session: string,
  steps: ReadonlyArray<Step>,
  ctx: DecideContext = testContext
): { readonly tape: ReadonlyArray<Envelope>; readonly state: SessionState } => {
  const state = initialState(session)
  const tape: Array<Envelope> = []
  steps.forEach((step, i) => {
    const input = typeof step.input === "function" ? step.input(state) : step.input
    const decision = decide(state, input, step.by, ctx)
    if (Either.isLeft(decision)) {
      if (step.rejected === decision.left.code) return
      throw new Error(`step ${i} (${input.type}) was rejected: ${decision.left.code} ${decision.left.message}`)
    }
    if (step.rejected !== undefined) throw new Error(`step ${i} (${input.type}) should be rejected with ${step.rejected}`)
    decision.right.forEach((draft) => {
      const e: Envelope = { ...draft, session, seq: state.head + 1, at: T0 + i * 1000 }
      evolve(state, e)
      tape.push(e)
    })
  })
  return { tape, state }
}

// ---- step builders (ids are read from the state, as a runner or a client would see them) ----

const streaming = (s: SessionState): string => {
  if (s.interrupts.streaming === null) throw new Error("no turn is streaming")
  return s.interrupts.streaming
}
const lastTurn = (s: SessionState): string => {
  if (s.interrupts.lastTurn === null) throw new Error("no turn yet")
  return s.interrupts.lastTurn.turnId
}
/** The `i`-th call (0-based, in request order) of the latest turn that has calls. */
export const callOf = (s: SessionState, i: number): string => {
  const calls = s.commands.byTurn.get(lastTurn(s)) ?? [...s.commands.byTurn.values()].at(-1) ?? []
  const id = calls[i]
  if (id === undefined) throw new Error(`no call #${i} in the latest turn`)
  return id
}

export const user = "user:alice"
export const create = (title?: string): Step => ({ input: { type: "create", ...(title !== undefined ? { title } : {}) }, by: "system" })
export const send = (text: string, mode?: "queue" | "interrupt", by: Actor = user): Step => ({
  input: { type: "send_message", text, ...(mode !== undefined ? { mode } : {}) },
  by
})
export const delta = (text: string): Step => ({ input: (s) => ({ type: "model_delta", turnId: streaming(s), text }), by: "model" })
export const toolCall = (tool: string, args: unknown, description?: string): Step => ({
  input: (s) => ({ type: "model_tool_call", turnId: streaming(s), tool, args, ...(description !== undefined ? { description } : {}) }),
  by: "model"
})
export const completed = (inputTokens?: number, outputTokens?: number): Step => ({
  input: (s) => ({
    type: "model_completed",
    turnId: streaming(s),
    ...(inputTokens !== undefined ? { usage: { inputTokens, outputTokens: outputTokens ?? 0 } } : {})
  }),
  by: "model"
})
export const failed = (error: string, retryable = false): Step => ({ input: (s) => ({ type: "model_failed", turnId: streaming(s), error, retryable }), by: "model" })
export const approve = (i: number, args?: Record<string, unknown>): Step => ({
  input: (s) => ({ type: "approve", callId: callOf(s, i), ...(args !== undefined ? { args } : {}) }),
  by: user
})
export const reject = (i: number, reason?: string): Step => ({
  input: (s) => ({ type: "reject", callId: callOf(s, i), ...(reason !== undefined ? { reason } : {}) }),
  by: user
})
export const interrupt = (reason?: string): Step => ({ input: { type: "interrupt", ...(reason !== undefined ? { reason } : {}) }, by: user })
export const started = (i: number): Step => ({ input: (s) => ({ type: "tool_started", callId: callOf(s, i) }), by: "tool" })
export const succeeded = (i: number, output: string): Step => ({ input: (s) => ({ type: "tool_succeeded", callId: callOf(s, i), output }), by: "tool" })
export const toolFailed = (i: number, error: string): Step => ({ input: (s) => ({ type: "tool_failed", callId: callOf(s, i), error }), by: "tool" })
export const cancelQueued = (i: number): Step => ({
  input: (s) => {
    const q = s.messages.queue[i]
    if (q === undefined) throw new Error(`no queued message #${i}`)
    return { type: "cancel_queued", messageId: q.messageId }
  },
  by: user
})
export const restart: Step = { input: { type: "close_open", reason: "restart", approved: "keep", settle: true }, by: "system" }
/** Marks a step as one the writer must refuse (it appends nothing to the recording). */
export const refused = (step: Step, code: string): Step => ({ ...step, rejected: code })

/** A conversation item as plain data: tool cards resolved, unset fields left out (comparable across runs). */
export type ItemView =
  | { readonly user: string; readonly queued: boolean }
  | { readonly assistant: string; readonly status: string; readonly note: string | null }
  | { readonly loopStopped: string }
  | { readonly compaction: string; readonly upToSeq: number; readonly summary?: string }
  | {
      readonly call: string
      readonly tool: string
      readonly status: string
      readonly args: unknown
      readonly edited?: true
      readonly output?: string
      readonly error?: string
      readonly reason?: string
      readonly outcome?: string
      readonly decidedBy?: string
    }

export const itemsOf = (ui: UiView): ReadonlyArray<ItemView> =>
  ui.items.map((item): ItemView => {
    switch (item.kind) {
      case "user":
        return { user: item.text, queued: item.wasQueued }
      case "assistant":
        return { assistant: item.text, status: item.status, note: item.note }
      case "tool_call": {
        const c = ui.calls.get(item.callId)
        if (c === undefined) throw new Error(`tool card ${item.callId} has no call`)
        return {
          call: c.callId,
          tool: c.tool,
          status: c.status,
          args: c.args,
          ...(c.edited ? { edited: true as const } : {}),
          ...(c.output !== null ? { output: c.output } : {}),
          ...(c.error !== null ? { error: c.error } : {}),
          ...(c.reason !== null ? { reason: c.reason } : {}),
          ...(c.outcome !== null ? { outcome: c.outcome } : {}),
          ...(c.decidedBy !== null ? { decidedBy: c.decidedBy } : {})
        }
      }
      case "loop_stopped":
        return { loopStopped: item.reason }
      case "compaction":
        return { compaction: item.status, upToSeq: item.upToSeq, ...(item.summary !== null ? { summary: item.summary } : {}) }
      default: {
        const _exhaustive: never = item
        return _exhaustive
      }
    }
  })
