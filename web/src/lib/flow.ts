/**
 * The flow of DESIGN.md §1 as data: nodes, edges, and the path each event takes through them.
 * Pure: the flow view lights the union of the paths of a batch, once per batch.
 */
import type { Envelope } from "../../../src/domain/Event.ts"

export type NodeId = "clients" | "writer" | "store" | "bus" | "reducers" | "llm" | "tools"

/** Each edge and its two ends. The runners are drawn once: the bus feeds them, they report back to the writer. */
export const EDGES = {
  "clients-writer": ["clients", "writer"],
  "llm-writer": ["llm", "writer"],
  "tools-writer": ["tools", "writer"],
  "writer-store": ["writer", "store"],
  "store-bus": ["store", "bus"],
  "bus-reducers": ["bus", "reducers"],
  "reducers-clients": ["reducers", "clients"],
  "bus-llm": ["bus", "llm"],
  "bus-tools": ["bus", "tools"]
} as const satisfies Record<string, readonly [NodeId, NodeId]>
export type EdgeId = keyof typeof EDGES

/** Where an event enters the writer from, by its actor (system and policy events are the writer's own). */
export const sourceOf = (by: string): NodeId =>
  by.startsWith("user:") ? "clients" : by === "model" ? "llm" : by === "tool" ? "tools" : "writer"

/** Which runners react to an event (the LLM runner starts or aborts turns; the tool runner runs or cancels calls). */
const reactions = (e: Envelope): ReadonlyArray<EdgeId> => {
  switch (e.type) {
    case "TurnStarted":
    case "TurnInterrupted":
    case "InterruptRequested":
      return ["bus-llm"]
    case "ToolCallApproved":
    case "ToolExecutionCancelled":
      return ["bus-tools"]
    default:
      return []
  }
}

/** The edges one event lights: source → writer → store → bus → reducers → clients, plus the runners that react. */
export const pathOf = (e: Envelope): ReadonlyArray<EdgeId> => {
  const src = sourceOf(e.by)
  const entry: ReadonlyArray<EdgeId> =
    src === "clients" ? ["clients-writer"] : src === "llm" ? ["llm-writer"] : src === "tools" ? ["tools-writer"] : []
  return [...entry, "writer-store", "store-bus", "bus-reducers", "reducers-clients", ...reactions(e)]
}

export interface Pulse {
  /** Increases once per batch; its parity picks which of two identical animations runs, which restarts it. */
  readonly n: number
  readonly edges: ReadonlySet<EdgeId>
  readonly nodes: ReadonlySet<NodeId>
  /** Events in the batch. */
  readonly count: number
}

export const emptyPulse: Pulse = { n: 0, edges: new Set(), nodes: new Set(), count: 0 }

/** The union of the paths of a batch: O(batch) with a small constant, since paths depend on (source, type) only. */
export const pulseOf = (prev: Pulse, batch: ReadonlyArray<Envelope>): Pulse => {
  const edges = new Set<EdgeId>()
  const nodes = new Set<NodeId>()
  const seen = new Set<string>()
  for (const e of batch) {
    const k = `${sourceOf(e.by)}|${e.type}`
    if (seen.has(k)) continue
    seen.add(k)
    for (const edge of pathOf(e)) {
      edges.add(edge)
      for (const n of EDGES[edge]) nodes.add(n)
    }
  }
  return { n: prev.n + 1, edges, nodes, count: batch.length }
}
