/**
 * The `http_get` tool: a GET to a host on the allow-list (TAPE_HTTP_ALLOW), with a time limit and a body size cap.
 * Every hop (redirects are followed by hand) is checked twice, by name and by the addresses the name resolves to,
 * and the request goes to the checked address itself, so DNS cannot point an allowed name at the machine's own
 * services. Interruption aborts the request.
 */
import { lookup } from "node:dns/promises"
import { BlockList, isIP } from "node:net"
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

/** The addresses a host name resolves to (IPv4 dotted or IPv6 text), every one of them. */
export type Resolver = (hostname: string) => Promise<ReadonlyArray<string>>

/** The system resolver (getaddrinfo, as `fetch` would use). */
export const systemResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address)

/**
 * `http_get` limited to `allow`: exact host names (`example.com`), `host:port`, or `*.example.com`
 * for its subdomains. An empty list allows nothing. A name that resolves to a loopback, private, link-local,
 * unspecified, multicast or reserved address is refused unless that address itself is on the list
 * (`127.0.0.1`, `127.0.0.1:8080`, `[::1]:8080`). `resolve` replaces the system resolver (tests).
 */
export const makeHttpGetTool = (
  allow: ReadonlyArray<string>,
  limits: Partial<HttpLimits> = {},
  resolve: Resolver = systemResolver
): Tool<HttpGetArgs, typeof HttpGetArgs.Encoded> => {
  const effective: HttpLimits = { ...defaultHttpLimits, ...limits }
  const allowed = allow.map((entry) => entry.trim().toLowerCase()).filter((entry) => entry.length > 0)
  return {
    name: "http_get",
    description: `Fetch a URL with GET (hosts allowed: ${allowed.length > 0 ? allowed.join(", ") : "none"}); returns status, type and body.`,
    args: HttpGetArgs,
    policy: "ask",
    run: Effect.fn("Tool.http_get")(function* ({ url }) {
      return yield* fetchAllowed(url, allowed, effective, resolve).pipe(
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

// ---------------------------------------------------------------------------------------------
// Addresses

/** Address ranges a tool call must not reach unless the address is allow-listed, by what they are. */
const SPECIAL_RANGES: ReadonlyArray<{ readonly label: string; readonly subnets: ReadonlyArray<readonly [string, number]> }> = [
  { label: "unspecified", subnets: [["0.0.0.0", 8], ["::", 128]] },
  { label: "loopback", subnets: [["127.0.0.0", 8], ["::1", 128]] },
  { label: "private", subnets: [["10.0.0.0", 8], ["172.16.0.0", 12], ["192.168.0.0", 16], ["fc00::", 7], ["fec0::", 10]] },
  { label: "shared (CGNAT)", subnets: [["100.64.0.0", 10]] },
  { label: "link-local", subnets: [["169.254.0.0", 16], ["fe80::", 10]] },
  { label: "multicast", subnets: [["224.0.0.0", 4], ["ff00::", 8]] },
  // 240/4 holds the broadcast address; 192.0.0/24 and 198.18/15 are protocol and benchmarking space, used inside networks.
  { label: "reserved", subnets: [["240.0.0.0", 4], ["192.0.0.0", 24], ["198.18.0.0", 15], ["64:ff9b:1::", 48]] }
]

const RANGES = SPECIAL_RANGES.map(({ label, subnets }) => {
  const list = new BlockList()
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, network.includes(":") ? "ipv6" : "ipv4")
  return { label, list }
})

/** The 8 groups of an IPv6 address (any valid textual form). */
const hextets = (address: string): ReadonlyArray<number> => {
  // The URL parser canonicalises (an embedded dotted IPv4 becomes two groups), leaving at most one `::`.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1)
  const [head = "", tail] = canonical.split("::")
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((group) => Number.parseInt(group, 16)))
  const left = groups(head)
  const right = tail === undefined ? [] : groups(tail)
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right]
}

const dotted = (high: number, low: number): string => [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".")

/**
 * The IPv4 address an IPv6 address stands for (compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, and
 * Teredo `2001:0::/32`, whose client address is the last 32 bits inverted).
 */
const embeddedIpv4 = (address: string): string | undefined => {
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0] = hextets(address)
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0 && (g !== 0 || h > 1)) return dotted(g, h)
  if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0) return dotted(g, h)
  if (a === 0x2002) return dotted(b, c)
  if (a === 0x2001 && b === 0) return dotted(g ^ 0xffff, h ^ 0xffff)
  return undefined
}

/**
 * What kind of special address `address` is (`loopback`, `private`, `link-local`, …), or undefined for an address
 * on the public internet. IPv4-mapped, IPv4-compatible, NAT64, 6to4 and Teredo forms are judged by the IPv4 they carry.
 */
export const specialRange = (address: string): string | undefined => {
  const family = isIP(address)
  if (family === 0) return "not an IP address"
  const direct = RANGES.find(({ list }) => list.check(address, family === 4 ? "ipv4" : "ipv6"))?.label
  if (direct !== undefined || family === 4) return direct
  const inner = embeddedIpv4(address)
  return inner === undefined ? undefined : specialRange(inner)
}

/** An address as the URL parser writes it (`127.0.0.1`, `[::1]`), so equal addresses compare equal as text. */
const canonicalAddress = (address: string): string | undefined => {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address
  const family = isIP(bare)
  if (family === 0) return undefined
  return new URL(`http://${family === 6 ? `[${bare}]` : bare}/`).hostname
}

/** The allow-list entries that name an address (`127.0.0.1`, `127.0.0.1:8080`, `[::1]`, `[::1]:8080`). */
const allowedAddresses = (allowed: ReadonlyArray<string>): ReadonlyArray<{ readonly address: string; readonly port?: string }> =>
  allowed.flatMap((entry) => {
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry)
    const address = match?.[1] === undefined ? undefined : canonicalAddress(match[1])
    if (address === undefined) return []
    return [match?.[2] === undefined ? { address } : { address, port: String(Number(match[2])) }]
  })

const portOf = (url: URL): string => url.port || (url.protocol === "https:" ? "443" : "80")

/**
 * The addresses `url` may be fetched from, or the reason it may not: every address its host resolves to must be
 * public or itself on the allow-list. `localhost` and `*.localhost` are loopback without asking DNS (RFC 6761, as
 * `fetch` treats them).
 */
export const checkAddresses = (url: URL, addresses: ReadonlyArray<string>, allowed: ReadonlyArray<string>): ReadonlyArray<string> | string => {
  if (addresses.length === 0) return `http_get: ${url.hostname} resolves to no address`
  const exceptions = allowedAddresses(allowed)
  const port = portOf(url)
  for (const address of addresses) {
    const range = specialRange(address)
    if (range === undefined) continue
    const canonical = canonicalAddress(address)
    if (exceptions.some((e) => e.address === canonical && (e.port === undefined || e.port === port))) continue
    const entry = `${canonical ?? address}:${port}`
    return `refused: ${url.host} resolves to ${address}, a ${range} address; to reach it, allow the address itself (TAPE_HTTP_ALLOW=${entry})`
  }
  return addresses
}

const resolveHost = (url: URL, resolve: Resolver): Effect.Effect<ReadonlyArray<string>, ToolError> => {
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
  if (isIP(hostname) !== 0) return Effect.succeed([hostname])
  if (hostname === "localhost" || hostname.endsWith(".localhost")) return Effect.succeed(["127.0.0.1", "::1"])
  return Effect.tryPromise({
    try: () => resolve(hostname),
    catch: (cause) => new ToolError({ message: `http_get: cannot resolve ${hostname} (${errorCode(cause)})`, cause })
  })
}

const errorCode = (cause: unknown): string => (cause instanceof Error && "code" in cause ? String(cause.code) : String(cause))

/**
 * A GET of `url` sent to `address` (already checked): the URL's host goes in the `Host` header and, for https, is
 * the TLS server name (SNI) the certificate is verified against, so nothing resolves the name again.
 */
const pinnedFetch = (url: URL, address: string, signal: AbortSignal): Promise<Response> => {
  const target = new URL(url)
  target.hostname = isIP(address) === 6 ? `[${address}]` : address
  const named = isIP(url.hostname.replace(/^\[|\]$/g, "")) === 0
  return fetch(target, {
    method: "GET",
    redirect: "manual",
    signal,
    headers: { host: url.host },
    ...(url.protocol === "https:" && named ? { tls: { serverName: url.hostname } } : {})
  })
}

// ---------------------------------------------------------------------------------------------
// The call

// One controller for the whole call: interruption or timeout aborts the request and the body read alike.
const fetchAllowed = (url: string, allowed: ReadonlyArray<string>, limits: HttpLimits, resolve: Resolver) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new AbortController()),
    (controller) =>
      Effect.gen(function* () {
        let target = url
        for (let hop = 0; hop <= limits.maxRedirects; hop++) {
          const checked = checkUrl(target, allowed)
          if (typeof checked === "string") return yield* new ToolError({ message: checked })
          const addresses = checkAddresses(checked, yield* resolveHost(checked, resolve), allowed)
          if (typeof addresses === "string") return yield* new ToolError({ message: addresses })
          const response = yield* send(checked, addresses, controller.signal)
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

/** Tries the checked addresses in the resolver's order; the first that answers is used. */
const send = (url: URL, addresses: ReadonlyArray<string>, signal: AbortSignal): Effect.Effect<Response, ToolError> =>
  Effect.tryPromise({
    try: async () => {
      let failure: unknown
      for (const address of addresses) {
        try {
          return await pinnedFetch(url, address, signal)
        } catch (cause) {
          if (signal.aborted) throw cause
          failure = cause
        }
      }
      throw failure
    },
    catch: (cause) => new ToolError({ message: `http_get: request to ${url.host} failed (${String(cause)})`, cause })
  })

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
