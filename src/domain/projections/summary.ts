/**
 * Session summary projection: the row the sessions list shows. O(1) per call, from counters kept by `evolve`.
 */
import type { SessionState } from "../state.ts"
import { phaseOf } from "./ui.ts"
import type { SessionSummary } from "./summaryTypes.ts"

export { SessionSummary } from "./summaryTypes.ts"

export const summaryView = (s: SessionState): SessionSummary => {
  const c = s.counters
  return {
    session: s.session,
    title: c.title ?? "New session",
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
    head: s.head,
    messages: c.messages,
    turns: c.turns,
    toolCalls: c.toolCalls,
    phase: phaseOf(s),
    pendingApprovals: s.commands.pending.size,
    tokens: { input: c.inputTokens, output: c.outputTokens },
    ...(c.forkedFrom ? { forkedFrom: c.forkedFrom } : {}),
    ...(c.importedFrom ? { importedFrom: c.importedFrom } : {})
  }
}
