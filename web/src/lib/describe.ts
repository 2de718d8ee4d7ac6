/** One-line, human summaries of events for the timeline, counts, durations and model names in words. Pure. */
import type { Envelope } from "../../../src/domain/Event.ts"

/** "1 event", "2 events"; `many` when the plural is not just an added s. */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`

/** The model a turn used, in words: the server's built-in and scripted models are not a provider's model id. */
export const modelLabel = (model: string): string =>
  model === "offline" ? "built-in model" : model === "scripted" ? "scripted model" : model

/** Where a tool comes from, in words: `builtin`, `config`, `mcp:<server>` (DESIGN.md §5, `/api/tools`). */
export const sourceLabel = (source: string): string =>
  source === "builtin" ? "built-in" : source === "config" ? "your config" : source.startsWith("mcp:") ? `MCP: ${source.slice(4)}` : source

const clip = (s: string, n = 80): string => {
  const one = s.replace(/\s+/g, " ").trim()
  return one.length > n ? `${one.slice(0, n - 1)}…` : one
}

export const describeEvent = (e: Envelope): string => {
  switch (e.type) {
    case "SessionCreated":
      return e.forkedFrom
        ? `forked from ${e.forkedFrom.session} @${e.forkedFrom.seq}`
        : e.importedFrom
          ? `imported (${e.importedFrom.seq} events)`
          : e.title
            ? `“${clip(e.title, 60)}”`
            : "new session"
    case "UserMessageAdded":
    case "UserMessageQueued":
      return `“${clip(e.text)}”`
    case "QueuedMessagesFlushed":
      return `${plural(e.messageIds.length, "queued message")} → conversation`
    case "QueuedMessageCancelled":
      return `cancelled ${e.messageId}`
    case "TurnStarted":
      return `${e.turnId} · ${modelLabel(e.model)}${e.retryOf ? ` · retry of ${e.retryOf}` : ""}`
    case "AssistantDelta":
      return JSON.stringify(clip(e.text, 60))
    case "ToolCallRequested":
      return `${e.tool} ${clip(JSON.stringify(e.args), 60)}`
    case "ToolCallInvalid":
      return `${e.tool}: ${clip(e.error, 60)}`
    case "TurnCompleted":
      return e.usage ? `${e.turnId} · ${e.usage.inputTokens} in / ${e.usage.outputTokens} out` : e.turnId
    case "TurnInterrupted":
      return `${e.turnId}: ${clip(e.reason, 60)}`
    case "TurnFailed":
      return `${e.turnId}: ${clip(e.error, 60)}${e.retryable ? " (retryable)" : ""}`
    case "ToolCallApproved":
      return e.args ? `${e.callId} with edited args` : e.callId
    case "ToolCallRejected":
      return `${e.callId}: ${clip(e.reason, 60)}`
    case "ToolExecutionStarted":
      return e.callId
    case "ToolExecutionSucceeded":
      return `${e.callId} → ${clip(e.output, 60)}${e.truncated ? " (truncated)" : ""}`
    case "ToolExecutionFailed":
      return `${e.callId}: ${clip(e.error, 60)}`
    case "ToolExecutionCancelled":
      return `${e.callId} (${e.outcome}): ${clip(e.reason, 50)}`
    case "InterruptRequested":
      return clip(e.reason, 60)
    case "ToolCallReopened":
      return `${e.callId}: ${clip(e.reason, 60)}`
    case "LoopStopped":
      return e.reason === "turn_limit" ? `turn limit (${e.turns ?? "?"} turns)` : "repeated invalid tool calls"
    case "CompactionStarted":
      return `summarising the memory up to @${e.upToSeq} (${plural(e.tokensBefore, "token")})`
    case "MemoryCompacted":
      return `memory up to @${e.upToSeq} summarised: ${plural(e.tokensBefore, "token")} → ${plural(e.tokensAfter, "token")}`
    case "MemoryTrimmed":
      return `${plural(e.omitted, "earlier message")} omitted from the memory: ${plural(e.tokensBefore, "token")} → ${plural(e.tokensAfter, "token")}`
    case "SessionRenamed":
      return `“${clip(e.title, 60)}”`
    case "ModelChosen":
      return `model: ${modelLabel(e.model)}`
    default: {
      const _exhaustive: never = e
      return _exhaustive
    }
  }
}

export const formatTime = (at: number): string => {
  const d = new Date(at)
  const p = (n: number, w = 2) => String(n).padStart(w, "0")
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`
}

/** "850 ms", "2.1 s", "3 min 5 s". */
export const formatDuration = (ms: number): string => {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))} ms`
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 1 : 0)} s`
  const m = Math.floor(ms / 60_000)
  return `${m} min ${Math.round((ms - m * 60_000) / 1_000)} s`
}

export const formatAgo = (at: number, now: number): string => {
  const s = Math.max(0, Math.round((now - at) / 1000))
  if (s < 45) return "just now"
  const m = Math.round(s / 60)
  if (m < 60) return `${m} min ago`
  const h = Math.round(m / 60)
  if (h < 24) return `${h} h ago`
  return new Date(at).toLocaleDateString()
}
