/**
 * The `http_get` tool: a GET to a host on the allow-list (TAPE_HTTP_ALLOW), with a time limit and a
 * body size cap. Redirects are followed by hand so every hop is checked; interruption aborts the request.
 */
import { Duration, Effect, Schema } from "effect"
import { type Tool, ToolError, type ToolOutput } from "./Tool.ts"

/** Limits of `http_get`. */
export interface HttpLimits {
  /** Budget of the whole call, redirects and body included. */
  readonly timeout: Duration.DurationInput
  /** Bytes of body kept; the rest is not read and the output is `truncated`. */
  readonly maxBodyBytes: number
  /** Redirect hops followed, each checked against the allow-list. */
  readonly maxRedirects: number
}

/** 10 s, 64 KiB of body, 5 redirects. */
export const defaultHttpLimits: HttpLimits = { timeout: "10 seconds", maxBodyBytes: 64 * 1024, maxRedirects: 5 }

/** Args of `http_get`. */
export const HttpGetArgs = Schema.Struct({
  url: Schema.String.annotations({ description: "an http:// or https:// URL whose host is on the allow-list" })
})
export type HttpGetArgs = typeof HttpGetArgs.Type

/**
 * `http_get` limited to `allow`: exact host names (`example.com`), `host:port`, or `*.example.com`
 * for its subdomains. An empty list allows nothing.
 */
export const makeHttpGetTool = (
  allow: ReadonlyArray<string>,
  limits: Partial<HttpLimits> = {}
): Tool<HttpGetArgs, typeof HttpGetArgs.Encoded> => {
  const effective: HttpLimits = { ...defaultHttpLimits, ...limits }
  const allowed = allow.map((entry) => entry.trim().toLowerCase()).filter((entry) => entry.length > 0)
  return {
    name: "http_get",
    description: `Fetch a URL with GET (hosts allowed: ${allowed.length > 0 ? allowed.join(", ") : "none"}); returns status, type and body.`,
    args: HttpGetArgs,
    policy: "ask",
    run: Effect.fn("Tool.http_get")(function* ({ url }) {
      return yield* fetchAllowed(url, allowed, effective).pipe(
        Effect.timeoutFail({
          duration: effective.timeout,
          onTimeout: () =>
            new ToolError({ message: `http_get: no complete answer from ${url} within ${Duration.format(effective.timeout)}` })
        })
      )
    })
  }
}

/** Checks `url` against the allow-list: the parsed URL, or the reason it is refused. */
export const checkUrl = (url: string, allowed: ReadonlyArray<string>): URL | string => {
  if (allowed.length === 0)
    return "http_get is disabled: no host is allowed. Set TAPE_HTTP_ALLOW (comma-separated host names) to allow some."
  if (!URL.canParse(url)) return `not a valid URL: ${url}`
  const parsed = new URL(url)
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    return `refused: only http and https URLs are allowed, not ${parsed.protocol}`
  if (parsed.username !== "" || parsed.password !== "") return "refused: URLs with credentials are not allowed"
  const host = parsed.hostname.toLowerCase()
  const ok = allowed.some((entry) =>
    entry.startsWith("*.") ? host.endsWith(entry.slice(1)) : entry === host || entry === parsed.host.toLowerCase()
  )
  return ok ? parsed : `refused: ${parsed.host} is not on the allow-list (TAPE_HTTP_ALLOW: ${allowed.join(", ")})`
}

// One controller for the whole call: interruption or timeout aborts the request and the body read alike.
const fetchAllowed = (url: string, allowed: ReadonlyArray<string>, limits: HttpLimits) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new AbortController()),
    (controller) =>
      Effect.gen(function* () {
        let target = url
        for (let hop = 0; hop <= limits.maxRedirects; hop++) {
          const checked = checkUrl(target, allowed)
          if (typeof checked === "string") return yield* new ToolError({ message: checked })
          const response = yield* Effect.tryPromise({
            try: () => fetch(checked, { method: "GET", redirect: "manual", signal: controller.signal }),
            catch: (cause) =>
              new ToolError({ message: `http_get: request to ${checked.host} failed (${String(cause)})`, cause })
          })
          const location = response.headers.get("location")
          if (response.status >= 300 && response.status < 400 && location !== null) {
            yield* Effect.promise(() => response.body?.cancel().catch(() => undefined) ?? Promise.resolve())
            target = new URL(location, checked).toString()
            continue
          }
          return yield* readBody(response, limits.maxBodyBytes)
        }
        return yield* new ToolError({ message: `http_get: more than ${limits.maxRedirects} redirects` })
      }),
    (controller) => Effect.sync(() => controller.abort())
  )

// Reads at most `max` bytes, then stops so a huge body is never downloaded (the caller aborts the rest).
const readBody = (response: Response, max: number): Effect.Effect<ToolOutput, ToolError> =>
  Effect.tryPromise({
    try: async () => {
      const chunks: Array<Uint8Array> = []
      let size = 0
      let truncated = false
      const reader = response.body?.getReader()
      while (reader !== undefined) {
        const { done, value } = await reader.read()
        if (done) break
        const room = max - size
        if (value.length > room) {
          chunks.push(value.subarray(0, room))
          size = max
          truncated = true
          break
        }
        chunks.push(value)
        size += value.length
      }
      const body = new TextDecoder().decode(concat(chunks, size))
      const type = response.headers.get("content-type") ?? "unknown"
      const head = `HTTP ${response.status} ${response.statusText}\ncontent-type: ${type}`
      return { output: `${head}\n\n${body}`, truncated }
    },
    catch: (cause) => new ToolError({ message: `http_get: reading the body failed (${String(cause)})`, cause })
  })

const concat = (chunks: ReadonlyArray<Uint8Array>, size: number): Uint8Array => {
  const all = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    all.set(chunk, at)
    at += chunk.length
  }
  return all
}
