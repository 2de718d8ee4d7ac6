// http_get against a local Bun.serve on 127.0.0.1: the allow-list, redirects, the size cap, timeout and abort.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Effect, Either, Exit, Fiber, TestClock, TestContext } from "effect"
import { checkAddresses, checkUrl, makeHttpGetTool, specialRange } from "../src/tools/httpGet.ts"
import type { ToolOutput } from "../src/tools/Tool.ts"

type Server = ReturnType<typeof Bun.serve>

let server: Server
let origin = ""
let hits: Array<string> = []
// The next request to /hang resolves `received`, and `aborted` once the client goes away.
let hang = { received: Promise.withResolvers<void>(), aborted: Promise.withResolvers<void>() }

beforeAll(() => {
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) => {
      const url = new URL(request.url)
      hits.push(url.pathname)
      switch (url.pathname) {
        case "/hello":
          return new Response("hello from the test server", { headers: { "content-type": "text/plain" } })
        case "/big":
          return new Response("z".repeat(1024 * 1024))
        case "/missing":
          return new Response("nothing here", { status: 404 })
        case "/redirect-in":
          return Response.redirect(`${origin}/hello`, 302)
        case "/redirect-out":
          return Response.redirect(`http://localhost:${url.port}/hello`, 302)
        case "/redirect-loop":
          return Response.redirect(`${origin}/redirect-loop`, 302)
        case "/hang": {
          request.signal.addEventListener("abort", () => hang.aborted.resolve())
          hang.received.resolve()
          return new Promise<Response>(() => {})
        }
        default:
          return new Response("no route", { status: 500 })
      }
    }
  })
  origin = `http://127.0.0.1:${server.port}`
})

afterAll(() => server.stop(true))

const freshHang = () => {
  hang = { received: Promise.withResolvers<void>(), aborted: Promise.withResolvers<void>() }
}

const get = (url: string, allow: ReadonlyArray<string> = ["127.0.0.1"], maxBodyBytes?: number) =>
  Effect.runPromise(
    makeHttpGetTool(allow, maxBodyBytes === undefined ? {} : { maxBodyBytes })
      .run({ url })
      .pipe(Effect.mapError((error) => error.message), Effect.either)
  )

const refused = (result: Either.Either<ToolOutput, string>): string => {
  if (Either.isRight(result)) throw new Error(`expected a refusal, got output: ${result.right.output}`)
  return result.left
}

describe("http_get", () => {
  test("an allowed host answers with status, content type and body", async () => {
    expect(await get(`${origin}/hello`)).toEqual(
      Either.right({ output: "HTTP 200 OK\ncontent-type: text/plain\n\nhello from the test server", truncated: false })
    )
  })

  test("host:port entries are allowed too; a 404 is data for the model", async () => {
    const result = await get(`${origin}/missing`, [`127.0.0.1:${server.port}`])
    expect(Either.getOrThrow(result).output).toStartWith("HTTP 404")
  })

  test("a host not on the list is refused before any request is made", async () => {
    hits = []
    expect(refused(await get(`${origin}/hello`, ["example.com"]))).toBe(
      `refused: 127.0.0.1:${server.port} is not on the allow-list (TAPE_HTTP_ALLOW: example.com)`
    )
    expect(hits).toEqual([])
  })

  test("an empty allow-list names the variable to set", async () => {
    expect(refused(await get(`${origin}/hello`, []))).toContain("Set TAPE_HTTP_ALLOW")
  })

  test("only http and https; no credentials in the URL; no garbage", async () => {
    expect(refused(await get("file:///etc/passwd"))).toContain("only http and https")
    expect(refused(await get("ftp://127.0.0.1/x"))).toContain("only http and https")
    expect(refused(await get(`http://user:pw@127.0.0.1:${server.port}/hello`))).toContain("credentials")
    expect(refused(await get("not a url"))).toContain("not a valid URL")
  })

  test("wildcard entries match subdomains only", () => {
    const allow = ["*.example.com"]
    expect(checkUrl("https://api.example.com/x", allow)).toBeInstanceOf(URL)
    expect(checkUrl("https://evilexample.com/x", allow)).toContain("not on the allow-list")
    expect(checkUrl("https://example.com.evil.org/x", allow)).toContain("not on the allow-list")
  })

  test("redirects are followed only to allowed hosts", async () => {
    expect(Either.getOrThrow(await get(`${origin}/redirect-in`)).output).toContain("hello from the test server")
    hits = []
    expect(refused(await get(`${origin}/redirect-out`))).toContain("localhost")
    expect(hits).toEqual(["/redirect-out"])
    expect(refused(await get(`${origin}/redirect-loop`))).toContain("more than 5 redirects")
  })

  test("the body is capped and marked truncated", async () => {
    const result = Either.getOrThrow(await get(`${origin}/big`, ["127.0.0.1"], 1000))
    expect(result.truncated).toBe(true)
    expect(result.output.endsWith(`\n\n${"z".repeat(1000)}`)).toBe(true)
  })

  test("a server that never answers hits the time limit and the request is aborted", async () => {
    freshHang()
    const program = Effect.gen(function* () {
      const fiber = yield* Effect.fork(makeHttpGetTool(["127.0.0.1"], { timeout: "3 seconds" }).run({ url: `${origin}/hang` }))
      yield* Effect.promise(() => hang.received.promise)
      yield* TestClock.adjust("3 seconds")
      return yield* Fiber.join(fiber).pipe(Effect.mapError((error) => error.message), Effect.either)
    }).pipe(Effect.provide(TestContext.TestContext))
    expect(refused(await Effect.runPromise(program))).toContain("within 3s")
    await hang.aborted.promise
  })

  test("interrupting the fiber aborts the request", async () => {
    freshHang()
    const program = Effect.gen(function* () {
      const fiber = yield* Effect.fork(makeHttpGetTool(["127.0.0.1"]).run({ url: `${origin}/hang` }))
      yield* Effect.promise(() => hang.received.promise)
      return yield* Fiber.interrupt(fiber)
    })
    const exit = await Effect.runPromise(program)
    expect(Exit.isInterrupted(exit)).toBe(true)
    await hang.aborted.promise
  })
})

describe("addresses", () => {
  test("public addresses, in every form, are not special", () => {
    for (const address of ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "172.32.0.1", "100.128.0.1"])
      expect(`${address}: ${specialRange(address)}`).toBe(`${address}: undefined`)
  })

  test("range edges", () => {
    expect(specialRange("172.15.255.255")).toBeUndefined()
    expect(specialRange("172.31.255.255")).toBe("private")
    expect(specialRange("100.127.255.255")).toBe("shared (CGNAT)")
    expect(specialRange("fbff::1")).toBeUndefined()
    expect(specialRange("fc00::1")).toBe("private")
    expect(specialRange("not-an-address")).toBe("not an IP address")
  })

  test("an allow-listed address is an exception only for its own port (any port without one); IPv6 in brackets", () => {
    const url = (s: string) => new URL(s)
    expect(checkAddresses(url("http://a.test:8080/"), ["::1"], ["[::1]:8080"])).toEqual(["::1"])
    expect(checkAddresses(url("http://a.test:8081/"), ["::1"], ["[::1]:8080"])).toContain("loopback")
    expect(checkAddresses(url("http://a.test:9/"), ["127.0.0.1"], ["127.0.0.1"])).toEqual(["127.0.0.1"])
    expect(checkAddresses(url("http://a.test/"), ["127.0.0.1"], ["127.0.0.1:80"])).toEqual(["127.0.0.1"])
    expect(checkAddresses(url("https://a.test/"), ["127.0.0.1"], ["127.0.0.1:80"])).toContain("TAPE_HTTP_ALLOW=127.0.0.1:443")
    expect(checkAddresses(url("http://a.test/"), [], ["a.test"])).toContain("resolves to no address")
  })
})
