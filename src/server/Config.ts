/**
 * Server configuration from the environment (DESIGN.md §8). Read once in main.ts; everything else gets it injected.
 */
import { Context } from "effect"

export interface ServerConfig {
  readonly host: string
  readonly port: number
  /** Access token for /ws and /api; null when serving loopback without one. */
  readonly token: string | null
  /** Origins allowed to open /ws besides the server's own. */
  readonly allowedOrigins: ReadonlyArray<string>
  /** Folder of the built visualizer. */
  readonly webRoot: string
  /** Unsent bytes above which the bridge stops feeding a client until its socket drains. */
  readonly highWaterBytes: number
  /** Unsent bytes past which a client is disconnected at once as a slow reader. */
  readonly maxBufferedBytes: number
  /** How long a client may take to drain before it is disconnected as a slow reader. */
  readonly slowReaderMs: number
  /** Commands a connection may send per second (burst = 2 seconds' worth). */
  readonly commandsPerSecond: number
}

export class ServerConfigTag extends Context.Tag("tape/ServerConfig")<ServerConfigTag, ServerConfig>() {}

export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host)

export type Env = Readonly<Record<string, string | undefined>>

/** Reads the config; a non-loopback host without TAPE_TOKEN gets a generated token. */
export const fromEnv = (env: Env, generateToken: () => string): ServerConfig => {
  const host = env.HOST?.trim() || "127.0.0.1"
  const portText = env.PORT?.trim() || "3457"
  const port = Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number (0-65535), got "${portText}"`)
  const given = env.TAPE_TOKEN?.trim()
  const token = given ? given : isLoopback(host) ? null : generateToken()
  const allowedOrigins = (env.TAPE_ALLOWED_ORIGINS ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
  return {
    host,
    port,
    token,
    allowedOrigins,
    webRoot: env.TAPE_WEB_ROOT?.trim() || "web/dist",
    highWaterBytes: 256 * 1024,
    maxBufferedBytes: Number(env.TAPE_MAX_BUFFERED_BYTES ?? "") || 8 * 1024 * 1024,
    slowReaderMs: Number(env.TAPE_SLOW_READER_MS ?? "") || 15_000,
    commandsPerSecond: Number(env.TAPE_COMMANDS_PER_SECOND ?? "") || 50
  }
}

/** Constant-time comparison of a presented token with the configured one. */
export const tokenMatches = (expected: string | null, presented: string | null): boolean => {
  if (expected === null) return true
  if (presented === null) return false
  const a = new TextEncoder().encode(expected)
  const b = new TextEncoder().encode(presented)
  let diff = a.length ^ b.length
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i % Math.max(b.length, 1)] ?? 0)
  return diff === 0
}

/** What model new turns use, for `/api/info` and the offline banner. */
export interface ModelInfo {
  readonly model: string
  readonly provider: string
  readonly offline: boolean
}
export class ModelInfoTag extends Context.Tag("tape/ModelInfo")<ModelInfoTag, ModelInfo>() {}
