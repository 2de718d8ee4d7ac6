/** Test support: a plain session summary for raw store appends (the store keeps it; nothing here folds it). */
import type { SessionSummary } from "../../src/domain/projections/summaryTypes.ts"

export const summaryOf = (session: string, head: number, updatedAt = head, title = session): SessionSummary => ({
  session,
  title,
  createdAt: 1,
  updatedAt,
  head,
  messages: head,
  turns: 0,
  toolCalls: 0,
  phase: "idle",
  pendingApprovals: 0,
  tokens: { input: 0, output: 0 }
})
