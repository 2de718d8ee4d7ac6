/**
 * decide(state, input): the events one input appends, or a typed Rejection. Enforces the rules of DESIGN.md §2.
 * Pure: ids derive from the seq each event will get, time is the writer's, the tool catalogue comes in `ctx`.
 */
import { Either } from "effect"
import type { Actor, Draft, JsonObject } from "./Event.ts"
import { type Input, Rejection } from "./Command.ts"
import { coveredBy, memoryTokens, messageTokens, tokensAfterCompaction } from "./projections/memory.ts"
import { isTerminal } from "./reducers/commands.ts"
import { isBusy, type SessionState } from "./state.ts"
import { MESSAGE_OVERHEAD, tokensOf } from "./tokens.ts"

export type ToolCheck =
  | { readonly ok: true; readonly args: JsonObject; readonly policy: "ask" | "auto" }
  | { readonly ok: false; readonly error: string }

/** Bounds of the model/tool loop (rule 3): past them the writer appends LoopStopped instead of another turn. */
export interface LoopLimits {
  /** Model turns after one user message (default 25). */
  readonly maxTurnsPerMessage: number
  /** Consecutive replies whose tool calls were all invalid (default 3). */
  readonly maxInvalidStreak: number
  /** Tool calls of one reply; the first past it is answered as invalid, the rest are dropped (default 50). */
  readonly maxCallsPerTurn: number
}

export const defaultLoopLimits: LoopLimits = { maxTurnsPerMessage: 25, maxInvalidStreak: 3, maxCallsPerTurn: 50 }

export interface DecideContext {
  /** Display name of the model that new turns use. */
  readonly model: string
  /** Validates a tool name and args against the catalogue (pure). */
  readonly checkTool: (tool: string, args: unknown) => ToolCheck
  /** Loop bounds; `defaultLoopLimits` where absent. */
  readonly limits?: Partial<LoopLimits>
  /** The names of the models a session may choose; absent: any name is accepted. */
  readonly models?: ReadonlyArray<string>
  /**
   * The context budget of a model in tokens (its choice's `contextTokens`, or TAPE_CONTEXT_TOKENS); undefined: no
   * budget, the memory is never compacted.
   */
  readonly contextTokens?: (model: string) => number | undefined
}

/** A turn whose prompt would pass this share of the budget is preceded by a compaction. */
export const COMPACT_AT = 0.8
/** A compaction replaces the oldest whole turns until what stays is at most this share of the budget. */
export const COMPACT_TO = 0.3
/** The longest summary kept, as a share of the budget in tokens; a longer one is cut, marked. With COMPACT_TO, a compacted memory is at most 40 %. */
export const SUMMARY_SHARE = 0.1
/** The newest memory messages a compaction never replaces (the exchange the next turn continues). */
export const KEEP_MESSAGES = 2

/** The model a new turn of this session uses: its chosen one, else the server's default. */
const modelOf = (s: SessionState, ctx: DecideContext): string => s.counters.model ?? ctx.model

/** Characters of an invalid call's args kept on the tape; a longer value is kept as its cut JSON text. */
export const MAX_INVALID_ARGS_CHARS = 4_096

/** What the model sent for an invalid call, size-capped (the UI shows it; the tape never holds an unbounded value). */
export const cappedArgs = (args: unknown): unknown => {
  let text: string | undefined
  try {
    text = JSON.stringify(args)
  } catch {
    return "[args that cannot be shown as JSON]"
  }
  if (text === undefined) return null
  return text.length <= MAX_INVALID_ARGS_CHARS ? args : `${text.slice(0, MAX_INVALID_ARGS_CHARS)}… [cut: ${text.length} characters]`
}

export type Decision = Either.Either<ReadonlyArray<Draft>, Rejection>

const reject = (code: string, message: string): Decision => Either.left(new Rejection({ code, message }))

/** Ids derive from the seq the event will have, so folding a tape is deterministic and ids are unique per tape. */
export const turnIdAt = (seq: number) => `turn-${seq}`
export const messageIdAt = (seq: number) => `msg-${seq}`
export const callIdAt = (seq: number) => `call-${seq}`

/** Builds the drafts of one decision, knowing the seq each will get. */
class Batch {
  readonly drafts: Array<Draft> = []
  constructor(private readonly head: number) {}
  get nextSeq() {
    return this.head + this.drafts.length + 1
  }
  push(d: Draft): this {
    this.drafts.push(d)
    return this
  }
}

/** Tokens the drafts of a batch add to the memory before its turn starts (the texts that enter it). */
const draftTokens = (s: SessionState, drafts: ReadonlyArray<Draft>): number => {
  let n = 0
  for (const d of drafts) {
    switch (d.type) {
      case "UserMessageAdded":
        n += MESSAGE_OVERHEAD + tokensOf(d.text)
        break
      case "QueuedMessagesFlushed":
        for (const id of d.messageIds) n += MESSAGE_OVERHEAD + tokensOf(s.memory.held.get(id) ?? "")
        break
      case "ToolExecutionSucceeded":
        n += tokensOf(d.output)
        break
      case "ToolExecutionFailed":
        n += tokensOf(d.error)
        break
      case "ToolCallRejected":
        n += tokensOf(d.reason)
        break
      default:
        break
    }
  }
  return n
}

/**
 * Where to cut the memory before a turn whose prompt would pass COMPACT_AT of `budget`: right before the oldest user
 * message (a whole turn: a call is never parted from its result, queued messages are not in the memory) after which
 * at most COMPACT_TO of the budget stays; as far as it can go when no cut gets there. Null: under the threshold, or
 * nothing to cut (fewer messages than KEEP_MESSAGES besides an earlier summary).
 */
export const planCompaction = (
  s: SessionState,
  extra: number,
  budget: number
): { readonly upToSeq: number; readonly tokensBefore: number } | null => {
  const tokensBefore = memoryTokens(s.memory) + extra
  if (tokensBefore <= budget * COMPACT_AT) return null
  const msgs = s.memory.messages
  let removed = 0
  // The first cut that gets under COMPACT_TO (at a user message if one does), else the deepest cut there is.
  let userFits: number | null = null
  let anyFits: number | null = null
  let deepest: number | null = null
  for (let k = 1; k <= msgs.length - KEEP_MESSAGES && userFits === null; k++) {
    removed += messageTokens(msgs[k - 1]!)
    const next = msgs[k]!
    // Flushed messages share one seq: a cut between them cannot be named by a seq.
    if (next.seq <= msgs[k - 1]!.seq) continue
    // Cutting only an earlier summary would summarise the summary: nothing gained.
    if (k === 1 && msgs[0]!.role === "summary") continue
    deepest = k
    if (tokensBefore - removed > budget * COMPACT_TO) continue
    if (next.role === "user") userFits = k
    else anyFits ??= k
  }
  const cut = userFits ?? anyFits ?? deepest
  if (cut === null) return null
  return { upToSeq: msgs[cut]!.seq - 1, tokensBefore }
}

/** A summary kept within SUMMARY_SHARE of the budget in tokens (a longer one is cut in proportion, marked). */
const cappedSummary = (summary: string, budget: number | undefined): string => {
  if (budget === undefined) return summary
  const max = Math.max(50, Math.floor(budget * SUMMARY_SHARE))
  // The summary is the model's answer, bounded by TAPE_MAX_REPLY_BYTES: counting it once is O(its size).
  const tokens = tokensOf(summary)
  if (tokens <= max) return summary
  return `${summary.slice(0, Math.floor((summary.length * max) / tokens * 0.95))}… [summary cut to fit the context budget]`
}

/** Closes the running compaction by dropping what it covered (no summary): the model sees `[N earlier messages omitted]`. */
const trimInto = (s: SessionState, b: Batch, by: Actor, reason: string): void => {
  const open = s.interrupts.compacting
  if (open === null) return
  const omitted = coveredBy(s.memory, open.upToSeq).messages
  const tokensAfter = tokensAfterCompaction(s.memory, open.upToSeq, "", true)
  b.push({ type: "MemoryTrimmed", upToSeq: open.upToSeq, omitted, tokensBefore: open.tokensBefore, tokensAfter, reason, by })
}

/** Whether these drafts end a compaction (the memory they leave is not the one `s` holds: no second plan on it). */
const endsCompaction = (drafts: ReadonlyArray<Draft>): boolean => drafts.some((d) => d.type === "MemoryCompacted" || d.type === "MemoryTrimmed")

/**
 * A new turn: its TurnStarted, or, when its prompt would pass the budget's threshold, the compaction before it
 * (CompactionStarted; the turn starts when it ends). `compact: false` after a compaction ended in this batch.
 */
const beginTurn = (s: SessionState, b: Batch, ctx: DecideContext, compact = true): void => {
  const model = modelOf(s, ctx)
  const budget = ctx.contextTokens?.(model)
  if (compact && budget !== undefined && s.interrupts.compacting === null && !endsCompaction(b.drafts)) {
    const plan = planCompaction(s, draftTokens(s, b.drafts), budget)
    if (plan !== null) {
      b.push({ type: "CompactionStarted", upToSeq: plan.upToSeq, tokensBefore: plan.tokensBefore, by: "system" })
      return
    }
  }
  b.push({ type: "TurnStarted", turnId: turnIdAt(b.nextSeq), model, by: "system" })
}

/** Events that close everything running or pending (rule 4); also used by send_message in interrupt mode. */
const interruptInto = (s: SessionState, b: Batch, by: Actor, reason: string): void => {
  b.push({ type: "InterruptRequested", reason, by })
  trimInto(s, b, by, `interrupted: ${reason}`)
  if (s.interrupts.streaming !== null) b.push({ type: "TurnInterrupted", turnId: s.interrupts.streaming, reason, by })
  for (const callId of s.commands.pending) b.push({ type: "ToolCallRejected", callId, reason: `interrupted: ${reason}`, by })
  for (const callId of s.commands.active) {
    const call = s.commands.calls.get(callId)
    const outcome = call?.status === "running" ? "unknown" : "not_run"
    b.push({ type: "ToolExecutionCancelled", callId, reason: `interrupted: ${reason}`, outcome, by })
  }
}

const startTurn = (s: SessionState, b: Batch, ctx: DecideContext, compact = true): void => {
  if (s.messages.queue.length > 0) {
    b.push({ type: "QueuedMessagesFlushed", messageIds: s.messages.queue.map((q) => q.messageId), by: "system" })
  }
  beginTurn(s, b, ctx, compact)
}

const limitsOf = (ctx: DecideContext): LoopLimits => ({ ...defaultLoopLimits, ...ctx.limits })

/** Would the session still be busy after these drafts? Folds only what matters for that, without touching `s`. */
const busyAfter = (s: SessionState, drafts: ReadonlyArray<Draft>): boolean => {
  let streaming = s.interrupts.streaming
  let compacting = s.interrupts.compacting !== null
  const open = new Map<string, boolean>()
  for (const id of s.commands.pending) open.set(id, true)
  for (const id of s.commands.active) open.set(id, true)
  for (const d of drafts) {
    switch (d.type) {
      case "TurnStarted":
        streaming = d.turnId
        break
      case "CompactionStarted":
        compacting = true
        break
      case "MemoryCompacted":
      case "MemoryTrimmed":
        compacting = false
        break
      case "TurnCompleted":
      case "TurnInterrupted":
      case "TurnFailed":
        if (streaming === d.turnId) streaming = null
        break
      case "ToolCallRequested":
      case "ToolCallApproved":
      case "ToolExecutionStarted":
        open.set(d.callId, true)
        break
      case "ToolCallInvalid":
      case "ToolCallRejected":
      case "ToolExecutionSucceeded":
      case "ToolExecutionFailed":
      case "ToolExecutionCancelled":
        open.set(d.callId, false)
        break
      default:
        break
    }
  }
  if (streaming !== null || compacting) return true
  for (const v of open.values()) if (v) return true
  return false
}

/**
 * When these drafts take the session from busy to idle (rule 1 and 3): loop back to the model when the
 * last turn completed with tool calls that are now all resolved by a result or a user/policy decision;
 * otherwise start a turn only for queued messages. An interrupt or cancellation ends the loop.
 */
const settleInto = (s: SessionState, b: Batch, ctx: DecideContext): void => {
  if (!isBusy(s) || busyAfter(s, b.drafts)) return
  const last = s.interrupts.lastTurn
  const completedNow = b.drafts.some((d) => d.type === "TurnCompleted" && d.turnId === last?.turnId)
  const endsLoop = b.drafts.some((d) => d.type === "InterruptRequested" || d.type === "TurnInterrupted" || d.type === "ToolExecutionCancelled")
  const hadCalls = last !== null && (s.commands.byTurn.get(last.turnId)?.length ?? 0) > 0
  const loops = last !== null && (last.end === "completed" || completedNow) && hadCalls && !endsLoop && !last.loopEnded
  if (s.messages.queue.length > 0) return startTurn(s, b, ctx)
  if (!loops) return
  // The loop is bounded: a model that keeps calling tools, or keeps making bad calls, is stopped with a reason.
  const limits = limitsOf(ctx)
  const turns = s.interrupts.turnsSinceUser
  const streak = completedNow && last !== null ? streakAfter(s, last.turnId) : s.interrupts.invalidStreak
  if (streak >= limits.maxInvalidStreak) b.push({ type: "LoopStopped", reason: "invalid_calls", turns, by: "system" })
  else if (turns >= limits.maxTurnsPerMessage) b.push({ type: "LoopStopped", reason: "turn_limit", turns, by: "system" })
  else startTurn(s, b, ctx)
}

/** The invalid-call streak once `turnId` (completing in this batch) is folded, as `evolve` will count it. */
const streakAfter = (s: SessionState, turnId: string): number => {
  const calls = s.commands.byTurn.get(turnId) ?? []
  const allInvalid = calls.length > 0 && calls.every((id) => s.commands.calls.get(id)?.status === "invalid")
  return allInvalid ? s.interrupts.invalidStreak + 1 : 0
}

const ok = (b: Batch): Decision => Either.right(b.drafts)

export const decide = (s: SessionState, input: Input, by: Actor, ctx: DecideContext): Decision => {
  const b = new Batch(s.head)
  if (s.head === 0 && input.type !== "create") return reject("unknown_session", `session ${s.session} does not exist`)
  switch (input.type) {
    case "create":
      if (s.head !== 0) return reject("already_created", `session ${s.session} already exists`)
      return ok(
        b.push({
          type: "SessionCreated",
          by,
          ...(input.title !== undefined ? { title: input.title } : {}),
          ...(input.forkedFrom !== undefined ? { forkedFrom: input.forkedFrom } : {})
        })
      )

    case "send_message": {
      if (input.text.trim() === "") return reject("empty_message", "a message needs some text")
      const busy = isBusy(s)
      if (busy && input.mode !== "interrupt") {
        return ok(b.push({ type: "UserMessageQueued", messageId: messageIdAt(b.nextSeq), text: input.text, by }))
      }
      if (busy) interruptInto(s, b, by, "interrupted by a new message")
      if (s.messages.queue.length > 0) {
        b.push({ type: "QueuedMessagesFlushed", messageIds: s.messages.queue.map((q) => q.messageId), by: "system" })
      }
      b.push({ type: "UserMessageAdded", messageId: messageIdAt(b.nextSeq), text: input.text, by })
      beginTurn(s, b, ctx)
      return ok(b)
    }

    case "approve": {
      const call = s.commands.calls.get(input.callId)
      if (!call) return reject("unknown_call", `no tool call ${input.callId} in this session`)
      if (call.status !== "pending") return reject("not_pending", `tool call ${input.callId} is not pending (it is ${call.status})`)
      if (input.args !== undefined) {
        const check = ctx.checkTool(call.tool, input.args)
        if (!check.ok) return reject("invalid_args", `edited args for ${call.tool} are invalid: ${check.error}`)
        return ok(b.push({ type: "ToolCallApproved", callId: input.callId, args: check.args, by }))
      }
      return ok(b.push({ type: "ToolCallApproved", callId: input.callId, by }))
    }

    case "reject": {
      const call = s.commands.calls.get(input.callId)
      if (!call) return reject("unknown_call", `no tool call ${input.callId} in this session`)
      if (call.status !== "pending") return reject("not_pending", `tool call ${input.callId} is not pending (it is ${call.status})`)
      b.push({ type: "ToolCallRejected", callId: input.callId, reason: input.reason?.trim() || "no reason given", by })
      settleInto(s, b, ctx)
      return ok(b)
    }

    case "interrupt": {
      if (!isBusy(s)) return reject("nothing_to_interrupt", "nothing is running: no streaming reply, pending approval or tool execution")
      interruptInto(s, b, by, input.reason?.trim() || "stopped by the user")
      settleInto(s, b, ctx)
      return ok(b)
    }

    case "retry_turn": {
      const last = s.interrupts.lastTurn
      if (isBusy(s)) return reject("busy", "a turn can be retried only when nothing is running or awaiting approval")
      if (last === null || last.turnId !== input.turnId) {
        return reject("not_last_turn", `only the last reply can be retried${last ? ` (${last.turnId})` : ""}`)
      }
      const lastItem = s.messages.items[s.messages.items.length - 1]
      if (lastItem?.kind === "user") return reject("not_last_turn", "a user message came after that reply; send a new message instead")
      return ok(b.push({ type: "TurnStarted", turnId: turnIdAt(b.nextSeq), model: modelOf(s, ctx), retryOf: input.turnId, by: "system" }))
    }

    case "rename": {
      const title = input.title.replace(/\s+/g, " ").trim()
      if (title === "") return reject("empty_title", "a title needs some text")
      return ok(b.push({ type: "SessionRenamed", title, by }))
    }

    case "choose_model":
      if (ctx.models !== undefined && !ctx.models.includes(input.model)) {
        return reject("unknown_model", `no model ${JSON.stringify(input.model)}; the models are: ${ctx.models.join(", ")}`)
      }
      return ok(b.push({ type: "ModelChosen", model: input.model, by }))

    case "cancel_queued":
      if (!s.messages.queue.some((q) => q.messageId === input.messageId)) {
        return reject("unknown_message", `no queued message ${input.messageId} (it may have been sent already)`)
      }
      return ok(b.push({ type: "QueuedMessageCancelled", messageId: input.messageId, by }))

    case "model_delta":
      if (s.interrupts.streaming !== input.turnId) return reject("stale", `turn ${input.turnId} is not streaming`)
      if (input.text === "") return ok(b)
      return ok(b.push({ type: "AssistantDelta", turnId: input.turnId, text: input.text, by }))

    case "model_tool_call": {
      if (s.interrupts.streaming !== input.turnId) return reject("stale", `turn ${input.turnId} is not streaming`)
      const callId = callIdAt(b.nextSeq)
      const made = s.commands.byTurn.get(input.turnId)?.length ?? 0
      const cap = limitsOf(ctx).maxCallsPerTurn
      if (made > cap) return reject("too_many_calls", `more than ${cap} tool calls in one reply; the rest are dropped`)
      if (made === cap) {
        const error = `more than ${cap} tool calls in one reply: this one and the rest were not run; make fewer calls`
        return ok(b.push({ type: "ToolCallInvalid", turnId: input.turnId, callId, tool: input.tool, error, args: cappedArgs(input.args), by }))
      }
      const check = ctx.checkTool(input.tool, input.args)
      if (!check.ok) {
        return ok(b.push({ type: "ToolCallInvalid", turnId: input.turnId, callId, tool: input.tool, error: check.error, args: cappedArgs(input.args), by }))
      }
      b.push({
        type: "ToolCallRequested",
        turnId: input.turnId,
        callId,
        tool: input.tool,
        args: check.args,
        by,
        ...(input.description !== undefined ? { description: input.description } : {})
      })
      if (check.policy === "auto") b.push({ type: "ToolCallApproved", callId, by: "policy:auto" })
      return ok(b)
    }

    case "model_completed":
      if (s.interrupts.streaming !== input.turnId) return reject("stale", `turn ${input.turnId} is not streaming`)
      b.push({ type: "TurnCompleted", turnId: input.turnId, by, ...(input.usage ? { usage: input.usage } : {}) })
      settleInto(s, b, ctx)
      return ok(b)

    case "model_failed":
      if (s.interrupts.streaming !== input.turnId) return reject("stale", `turn ${input.turnId} is not streaming`)
      b.push({ type: "TurnFailed", turnId: input.turnId, error: input.error, retryable: input.retryable, by })
      settleInto(s, b, ctx)
      return ok(b)

    case "model_summary":
    case "model_summary_failed": {
      const open = s.interrupts.compacting
      if (open === null || open.upToSeq !== input.upToSeq) return reject("stale", `no compaction up to seq ${input.upToSeq} is running`)
      const summary = input.type === "model_summary" ? cappedSummary(input.summary.trim(), ctx.contextTokens?.(modelOf(s, ctx))) : ""
      if (summary === "") {
        // No summary (the provider failed, or answered nothing): the oldest turns are dropped instead, so the turn fits.
        trimInto(s, b, "system", input.type === "model_summary_failed" ? `no summary: ${input.error}` : "no summary: the model answered nothing")
      } else {
        const tokensAfter = tokensAfterCompaction(s.memory, open.upToSeq, summary, false)
        b.push({ type: "MemoryCompacted", upToSeq: open.upToSeq, summary, tokensBefore: open.tokensBefore, tokensAfter, by: "model" })
      }
      // The turn the compaction was for starts now, with the queued messages that came meanwhile.
      startTurn(s, b, ctx, false)
      return ok(b)
    }

    case "tool_started": {
      const call = s.commands.calls.get(input.callId)
      if (call?.status !== "approved") return reject("stale", `tool call ${input.callId} is not approved and waiting (it is ${call?.status ?? "unknown"})`)
      return ok(b.push({ type: "ToolExecutionStarted", callId: input.callId, by }))
    }

    case "tool_succeeded":
    case "tool_failed":
    case "tool_cancelled": {
      const call = s.commands.calls.get(input.callId)
      if (call?.status !== "running") return reject("stale", `tool call ${input.callId} is not running (it is ${call?.status ?? "unknown"})`)
      if (input.type === "tool_succeeded") {
        b.push({ type: "ToolExecutionSucceeded", callId: input.callId, output: input.output, by, ...(input.truncated ? { truncated: true } : {}) })
      } else if (input.type === "tool_failed") {
        b.push({ type: "ToolExecutionFailed", callId: input.callId, error: input.error, by })
      } else {
        b.push({ type: "ToolExecutionCancelled", callId: input.callId, reason: input.reason, outcome: input.outcome, by })
      }
      settleInto(s, b, ctx)
      return ok(b)
    }

    case "close_open": {
      // A compaction open at a restart or at the end of a copy: no summary will come, so what it covered is dropped;
      // after a restart the turn it was for starts (it never ran); a copy never calls the model for its prefix.
      const compaction = s.interrupts.compacting !== null
      trimInto(s, b, by, `the compaction was stopped by the ${input.reason}`)
      if (s.interrupts.streaming !== null) b.push({ type: "TurnInterrupted", turnId: s.interrupts.streaming, reason: input.reason, by })
      for (const callId of s.commands.active) {
        const call = s.commands.calls.get(callId)
        if (call?.status === "running") b.push({ type: "ToolExecutionCancelled", callId, reason: input.reason, outcome: "unknown", by })
        else if (input.approved === "cancel") b.push({ type: "ToolExecutionCancelled", callId, reason: input.reason, outcome: "not_run", by })
        else if (input.approved === "reopen") {
          b.push({ type: "ToolCallReopened", callId, reason: `approved before the ${input.reason}; it needs a new approval here`, by })
        }
      }
      if (b.drafts.length === 0) return reject("nothing_open", "no turn, compaction or execution is open")
      if (input.settle && compaction) startTurn(s, b, ctx, false)
      else if (input.settle) settleInto(s, b, ctx)
      return ok(b)
    }

    case "abandon_turn":
      if (s.interrupts.streaming !== input.turnId) return reject("stale", `turn ${input.turnId} is not streaming`)
      b.push({ type: "TurnInterrupted", turnId: input.turnId, reason: input.reason, by })
      settleInto(s, b, ctx)
      return ok(b)

    case "abandon_call": {
      const call = s.commands.calls.get(input.callId)
      if (call?.status !== "running") return reject("stale", `tool call ${input.callId} is not running (it is ${call?.status ?? "unknown"})`)
      b.push({ type: "ToolExecutionCancelled", callId: input.callId, reason: input.reason, outcome: "unknown", by })
      settleInto(s, b, ctx)
      return ok(b)
    }

    default: {
      const _exhaustive: never = input
      return _exhaustive
    }
  }
}

/** Calls of a turn that are not resolved yet (for tests and tools that inspect a state). */
export const openCalls = (s: SessionState, turnId: string): ReadonlyArray<string> =>
  (s.commands.byTurn.get(turnId) ?? []).filter((id) => {
    const c = s.commands.calls.get(id)
    return c !== undefined && !isTerminal(c.status)
  })
