/**
 * The server's settings (from AppConfig, DESIGN.md §8) and the token check; everything else gets them injected.
 */
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { AppConfig, type AppConfigShape } from "../config/AppConfig.ts"

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

/**
 * The host name of a `Host` header value (`name`, `name:port`, `[v6]`, `[v6]:port`), lower case, without the port;
 * null when it is not one (empty, a bad port, stray brackets or spaces).
 */
export const hostnameOf = (host: string): string | null => {
  const h = host.trim().toLowerCase()
  const m = /^(\[[0-9a-f:.]+\]|[^\s:\[\]/@]+)(?::(\d{1,5}))?$/.exec(h)
  return m === null ? null : m[1]!
}

/** The server's settings from the process configuration; a non-loopback host without TAPE_TOKEN gets a generated token. */
export const serverConfigOf = (app: AppConfigShape, generateToken: () => string): ServerConfig => {
  const { host } = app.server
  const token = Option.match(app.server.token, {
    onSome: Redacted.value,
    onNone: () => (isLoopback(host) ? null : generateToken())
  })
  return {
    host,
    port: app.server.port,
    token,
    allowedOrigins: app.server.allowedOrigins,
    allowedHosts: app.server.allowedHosts.map((h) => hostnameOf(h) ?? h.toLowerCase()),
    sessionsPerMinute: app.server.sessionsPerMinute,
    webRoot: app.server.webRoot,
    highWaterBytes: 256 * 1024,
    maxBufferedBytes: app.server.maxBufferedBytes,
    slowReaderMs: app.server.slowReaderMs,
    commandsPerSecond: app.server.commandsPerSecond
  }
}

/** ServerConfigTag from AppConfig (a token, when one must be generated, is made when the layer is built). */
export const layerServerConfig: Layer.Layer<ServerConfigTag, never, AppConfig> = Layer.effect(
  ServerConfigTag,
  Effect.map(AppConfig, (app) => serverConfigOf(app, () => crypto.randomUUID().replaceAll("-", "")))
)

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

/** What model new turns use, and the choices a session may pick, for `/api/info`, the banner and the model picker. */
export interface ModelInfo {
  /** The default choice's name. */
  readonly model: string
  readonly provider: string
  readonly offline: boolean
  readonly models?: ReadonlyArray<{ readonly name: string; readonly provider: string; readonly model: string; readonly default: boolean; readonly contextTokens: number }>
}
export class ModelInfoTag extends Context.Tag("tape/ModelInfo")<ModelInfoTag, ModelInfo>() {}
