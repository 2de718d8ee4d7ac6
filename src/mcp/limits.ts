/**
 * The bounds every MCP server is held to (it is untrusted): time, counts and sizes. One place, with defaults;
 * tests pass smaller ones.
 */
import type { Duration } from "effect"
import type { JsonBounds } from "./jsonSchema.ts"

/** Limits of the MCP clients. */
export interface McpLimits {
  /** A call's time limit when its server has no `timeoutMs`. */
  readonly callTimeout: Duration.DurationInput
  /** Start, connect, initialize and the first listing of one attempt. */
  readonly startTimeout: Duration.DurationInput
  /** One `tools/list` refresh (all its pages). */
  readonly listTimeout: Duration.DurationInput
  /** Least time between two refreshes of one server: a flood of `tools/list_changed` costs one refresh per interval. */
  readonly refreshInterval: Duration.DurationInput
  /** Tools kept per server; the rest are skipped (and said so in its state). */
  readonly maxTools: number
  /** Pages of `tools/list` followed per listing. */
  readonly maxListPages: number
  /** Characters of a tool's description kept. */
  readonly maxDescriptionChars: number
  /** Bounds of a tool's input schema; a tool whose schema is outside them is skipped. */
  readonly schema: JsonBounds
  /** Characters of a result's text kept; the rest is cut and the result marked truncated. */
  readonly maxOutputChars: number
  /** Characters of a result's structured content (as JSON); larger is dropped and the result marked truncated. */
  readonly maxStructuredChars: number
  /** Bytes of one message from a server (a stdio line, an HTTP body or SSE event); more ends the connection. */
  readonly maxMessageBytes: number
  /** Characters of a stdio server's stderr kept, for the error that says why it stopped. */
  readonly maxStderrChars: number
  /** Restarts of a server that exited or disconnected. */
  readonly restart: {
    /** First back-off delay; it doubles per consecutive failure, with jitter. */
    readonly base: Duration.DurationInput
    /** Longest back-off delay. */
    readonly max: Duration.DurationInput
    /** Consecutive restarts before the server is given up (`failed`). */
    readonly attempts: number
    /** A connection that stayed up this long resets the back-off. */
    readonly stableAfter: Duration.DurationInput
  }
}

/** The defaults. */
export const defaultMcpLimits: McpLimits = {
  callTimeout: "60 seconds",
  startTimeout: "60 seconds",
  listTimeout: "30 seconds",
  refreshInterval: "1 second",
  maxTools: 128,
  maxListPages: 10,
  maxDescriptionChars: 1024,
  schema: { maxDepth: 32, maxChars: 32 * 1024 },
  maxOutputChars: 64 * 1024,
  maxStructuredChars: 64 * 1024,
  maxMessageBytes: 8 * 1024 * 1024,
  maxStderrChars: 2048,
  restart: { base: "500 millis", max: "30 seconds", attempts: 8, stableAfter: "60 seconds" }
}

/** `overrides` over the defaults (one level deep for `schema` and `restart`). */
export const mcpLimits = (
  overrides: Partial<Omit<McpLimits, "schema" | "restart">> & {
    readonly schema?: Partial<JsonBounds>
    readonly restart?: Partial<McpLimits["restart"]>
  } = {}
): McpLimits => ({
  ...defaultMcpLimits,
  ...overrides,
  schema: { ...defaultMcpLimits.schema, ...overrides.schema },
  restart: { ...defaultMcpLimits.restart, ...overrides.restart }
})
