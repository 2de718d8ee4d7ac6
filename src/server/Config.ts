/**
 * Server configuration from the environment (DESIGN.md §8). Read once in main.ts; everything else gets it injected.
 */
import { Context } from "effect"

export interface ServerConfig {
  readonly host: string
  readonly port: number
  /** Access token for /ws and /api; null when serving loopback without one. */
  readonly token: string | null
  /** Origins allowed to open /ws and to change state through /api, besides the server's own. */
  readonly allowedOrigins: ReadonlyArray<string>
  /** Host names (without port, lower case) accepted in `Host` besides the server's own (a reverse proxy's name). */
  readonly allowedHosts: ReadonlyArray<string>
  /** New sessions one remote address may create per minute (websocket hello and HTTP together; burst the same). */
  readonly sessionsPerMinute: number
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

const list = (text: string | undefined): Array<string> =>
  (text ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")

/**
 * The host name of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`), lower case, without the port;
 * null when it is not one (empty, a bad port, stray brackets or spaces).
 */
export const hostnameOf = (host: string): string | null => {
  const h = host.trim().toLowerCase()
  const m = /^(\[[0-9a-f:.]+\]|[^\s:\[\]/@]+)(?::(\d{1,5}))?$/.exec(h)
  return m === null ? null : m[1]!
}

/** Reads the config; a non-loopback host without TAPE_TOKEN gets a generated token. */
export const fromEnv = (env: Env, generateToken: () => string): ServerConfig => {
  const host = env.HOST?.trim() || "127.0.0.1"
  const portText = env.PORT?.trim() || "3457"
  const port = Number(portText)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number (0-65535), got "${portText}"`)
  const given = env.TAPE_TOKEN?.trim()
  const token = given ? given : isLoopback(host) ? null : generateToken()
  const allowedOrigins = list(env.TAPE_ALLOWED_ORIGINS)
  const allowedHosts = list(env.TAPE_ALLOWED_HOSTS).map((h) => hostnameOf(h) ?? h.toLowerCase())
  const perMinuteText = env.TAPE_SESSIONS_PER_MINUTE?.trim() || "600"
  const sessionsPerMinute = Number(perMinuteText)
  if (!Number.isFinite(sessionsPerMinute) || sessionsPerMinute < 1) {
    throw new Error(`TAPE_SESSIONS_PER_MINUTE must be a number of at least 1, got "${perMinuteText}"`)
  }
  return {
    host,
    port,
    token,
    allowedOrigins,
    allowedHosts,
    sessionsPerMinute,
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
