/** Test support: the plain rows of raw store appends — a user's message and a session summary (nothing here folds them). */
import type { Envelope } from "../../src/domain/Event.ts"
import type { SessionSummary } from "../../src/domain/projections/summaryTypes.ts"

export const message = (session: string, seq: number): Envelope => ({
  session,
  seq,
  at: 1_700_000_000_000 + seq,
  by: "user:c1",
  type: "UserMessageAdded",
  messageId: `m${seq}`,
  text: `message ${seq}`
})

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
