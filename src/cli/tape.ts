/**
 * `npm run tape -- replay <file.jsonl> [--at <seq>] [--json]`: folds a tape file with the real reducers and prints
 * its three projections (chat, LLM memory, summary). Reads one file; writes nothing but stdout/stderr.
 */
import { readFileSync } from "node:fs"
import { Either } from "effect"
import type { CallState } from "../domain/reducers/commands.ts"
import { memorySnapshot } from "../domain/projections/memory.ts"
import { summaryView } from "../domain/projections/summary.ts"
import { type UiView, uiView } from "../domain/projections/ui.ts"
import type { LlmMemory } from "../domain/projections/memoryTypes.ts"
import type { SessionSummary } from "../domain/projections/summaryTypes.ts"
import { fold } from "../domain/state.ts"
import { parseTape } from "../domain/tapeFile.ts"

export const usage = `usage: npm run tape -- replay <file.jsonl> [--at <seq>] [--json]

  replay <file.jsonl>   fold the tape and print its projections: chat (UI view), LLM memory, summary
  --at <seq>            stop at this seq (inclusive) instead of the end of the tape
  --json                machine output: {"session","at","head","ui","memory","summary"}
`

export interface ReplayArgs {
  readonly file: string
  readonly at: number | null
  readonly json: boolean
}

/** Parses argv (after the script name); a string is the reason the arguments are wrong. */
export const parseArgs = (argv: ReadonlyArray<string>): Either.Either<ReplayArgs, string> => {
  const [command, ...rest] = argv
  if (command !== "replay") return Either.left(command === undefined ? "missing command" : `unknown command ${JSON.stringify(command)}`)
  let file: string | null = null
  let at: number | null = null
  let json = false
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!
    if (arg === "--json") json = true
    else if (arg === "--at") {
      const value = rest[++i]
      if (value === undefined || !/^\d+$/.test(value) || Number(value) < 1) return Either.left("--at needs a seq (a whole number ≥ 1)")
      at = Number(value)
    } else if (arg.startsWith("--")) return Either.left(`unknown option ${arg}`)
    else if (file === null) file = arg
    else return Either.left(`unexpected argument ${JSON.stringify(arg)}`)
  }
  if (file === null) return Either.left("missing <file.jsonl>")
  return Either.right({ file, at, json })
}

const short = (value: unknown): string => JSON.stringify(value)
/** Multi-line text on one entry: later lines indented under the first. */
const block = (text: string, indent: string): string => text.split("\n").join(`\n${indent}`)

const cardLine = (c: CallState): string => {
  const head = `[${c.tool} ${c.status}${c.edited ? ", edited" : ""}] ${short(c.args)}`
  switch (c.status) {
    case "pending":
    case "approved":
    case "running":
      return head
    case "succeeded":
      return `${head} → ${c.output ?? ""}${c.truncated ? " [truncated]" : ""}`
    case "failed":
    case "invalid":
      return `${head} ✗ ${c.error ?? ""}`
    case "rejected":
      return `${head} ✗ ${c.reason ?? ""}`
    case "cancelled":
      return `${head} ✗ ${c.reason ?? ""} (${c.outcome === "not_run" ? "did not run" : "may have run"})`
    default: {
      const _exhaustive: never = c.status
      return _exhaustive
    }
  }
}

/** The chat as the visualizer shows it: one line per item, then the queue, phase and allowed actions. */
export const renderChat = (ui: UiView): Array<string> => {
  const lines: Array<string> = []
  for (const item of ui.items) {
    switch (item.kind) {
      case "user":
        lines.push(`user${item.wasQueued ? " (was queued)" : ""}: ${block(item.text, "  ")}`)
        break
      case "assistant":
        lines.push(`assistant${item.status === "completed" ? "" : ` (${item.status})`}: ${block(item.text, "  ")}${item.note !== null ? `  — ${item.note}` : ""}`.trimEnd())
        break
      case "tool_call": {
        const call = ui.calls.get(item.callId)
        lines.push(call ? `  ${block(cardLine(call), "    ")}` : `  [unknown call ${item.callId}]`)
        break
      }
      case "loop_stopped":
        lines.push(`[loop stopped: ${item.reason}${item.turns !== null ? ` after ${item.turns} turns` : ""}]`)
        break
      case "compaction":
        lines.push(`[earlier messages ${item.status === "running" ? "being summarised" : item.status === "compacted" ? "summarised" : "omitted"} for the model (up to @${item.upToSeq})${item.summary !== null ? `: ${block(item.summary, "  ")}` : ""}]`)
        break
      default: {
        const _exhaustive: never = item
        return _exhaustive
      }
    }
  }
  for (const q of ui.queue) lines.push(`queued: ${block(q.text, "  ")}`)
  const actions = Object.entries(ui.actions).flatMap(([name, allowed]) => (allowed ? [name.replace(/^can/, "").toLowerCase()] : []))
  lines.push("")
  lines.push(`phase: ${ui.phase}`)
  lines.push(`pending approvals: ${ui.pendingApprovals.length === 0 ? "none" : ui.pendingApprovals.map((c) => `${c.callId} (${c.tool})`).join(", ")}`)
  lines.push(`allowed: ${actions.join(", ") || "nothing"}`)
  return lines
}

/** The model's input: role-tagged messages, each tool call with its result. */
export const renderMemory = (memory: LlmMemory): Array<string> => {
  const lines: Array<string> = []
  for (const m of memory.messages) {
    if (m.role === "user" || m.role === "summary") {
      lines.push(`[${m.role}] ${block(m.text, "  ")}`)
      continue
    }
    lines.push(`[assistant] ${block(m.text, "  ")}`.trimEnd())
    for (const c of m.toolCalls) {
      lines.push(`  [tool_call ${c.callId}] ${c.tool} ${short(c.args)}`)
      lines.push(`  [tool_result ${c.callId}] ${block(c.result, "    ")}`)
    }
  }
  if (lines.length === 0) lines.push("(empty)")
  return lines
}

/** The summary row as `key: value` lines. */
export const renderSummary = (summary: SessionSummary): Array<string> =>
  Object.entries(summary).map(([key, value]) => {
    if (key === "createdAt" || key === "updatedAt") return `${key}: ${new Date(Number(value)).toISOString()} (${String(value)})`
    return `${key}: ${typeof value === "object" && value !== null ? short(value) : String(value)}`
  })

/** Plain JSON of the UI view (calls keyed by id). */
const uiJson = (ui: UiView) => ({ ...ui, calls: Object.fromEntries(ui.calls) })

/** Runs the CLI: returns the exit code, writing to `out` / `err`. */
export const main = (argv: ReadonlyArray<string>, out: (s: string) => void, err: (s: string) => void): number => {
  if (argv.includes("--help") || argv.includes("-h")) {
    out(usage)
    return 0
  }
  const args = parseArgs(argv)
  if (Either.isLeft(args)) {
    err(`tape: ${args.left}\n\n${usage}`)
    return 2
  }
  const { file, at, json } = args.right
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (cause) {
    err(`tape: cannot read ${file}: ${cause instanceof Error ? cause.message : String(cause)}\n`)
    return 1
  }
  const parsed = parseTape(text)
  if (Either.isLeft(parsed)) {
    err(`tape: ${file}: ${parsed.left.message}\n`)
    return 1
  }
  const tape = parsed.right
  const head = tape.length
  if (at !== null && at > head) {
    err(`tape: --at ${at} is past the end of the tape (its last seq is ${head})\n`)
    return 2
  }
  const session = tape[0]!.session
  const state = fold(session, tape, at ?? Infinity)
  const ui = uiView(state)
  const memory = memorySnapshot(state)
  const summary = summaryView(state)
  if (json) {
    out(`${JSON.stringify({ session, at: state.head, head, ui: uiJson(ui), memory, summary }, null, 2)}\n`)
    return 0
  }
  const sections = [
    `Tape ${session} — at seq ${state.head} of ${head}`,
    "",
    "== Chat (UI view) ==",
    ...renderChat(ui),
    "",
    "== LLM memory ==",
    ...renderMemory(memory),
    "",
    "== Summary ==",
    ...renderSummary(summary)
  ]
  out(`${sections.join("\n")}\n`)
  return 0
}

if (import.meta.main) {
  process.exitCode = main(
    process.argv.slice(2),
    (s) => process.stdout.write(s),
    (s) => process.stderr.write(s)
  )
}
