/**
 * Issue 10, findings 8 and 9, replayed as attacks over real sockets and a real file system:
 * `http_get` cannot be pointed at the machine's own services through an allowed name (loopback, private and other
 * special addresses, redirects, DNS answers, https), and `read_file` / `list_files` cannot be raced out of the workspace.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { makeListFilesTool, makeReadFileTool } from "../src/tools/files.ts"
import { makeHttpGetTool, type Resolver } from "../src/tools/httpGet.ts"
import type { ToolOutput } from "../src/tools/Tool.ts"
import { ROOT, spawnUntil } from "./support/process.ts"
import { seededRandom } from "./support/random.ts"

// ---------------------------------------------------------------------------------------------
// Finding 8: http_get and the addresses behind the names

type Server = ReturnType<typeof Bun.serve>

/** A service only the machine itself should reach; it counts what reaches it. */
let internal: Server
let internalHits: Array<string> = []
/** An allowed server (allow-listed by its address) that redirects to names of the test's choosing. */
let outer: Server

beforeAll(() => {
  internal = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      internalHits.push(`${req.headers.get("host")} ${new URL(req.url).pathname}`)
      return new Response("internal secrets")
    }
  })
  outer = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      const to = new URL(req.url).searchParams.get("to")
      return to === null ? new Response(`outer answered ${req.headers.get("host")}`) : Response.redirect(to, 302)
    }
  })
})

afterAll(() => {
  internal.stop(true)
  outer.stop(true)
})

/** A resolver that knows only `names`, and counts its calls. */
const resolverOf = (names: Record<string, ReadonlyArray<string>>) => {
  const calls: Array<string> = []
  const resolve: Resolver = async (name) => {
    calls.push(name)
    const found = names[name]
    if (found === undefined) throw Object.assign(new Error(`unknown name ${name}`), { code: "ENOTFOUND" })
    return found
  }
  return { resolve, calls }
}

const get = (url: string, allow: ReadonlyArray<string>, resolve?: Resolver): Promise<Either.Either<ToolOutput, string>> =>
  Effect.runPromise(makeHttpGetTool(allow, {}, resolve).run({ url }).pipe(Effect.mapError((e) => e.message), Effect.either))

const refusal = (result: Either.Either<ToolOutput, string>): string => {
  if (Either.isRight(result)) throw new Error(`expected a refusal, got: ${result.right.output}`)
  return result.left
}

describe("http_get refuses names that lead to the machine's own services", () => {
  test("`*.localhost` allowed: anything.localhost:PORT is loopback and refused, nothing is reached", async () => {
    internalHits = []
    const message = refusal(await get(`http://anything.localhost:${internal.port}/api/sessions`, ["*.localhost"]))
    expect(message).toContain("loopback")
    expect(message).toContain(`TAPE_HTTP_ALLOW=127.0.0.1:${internal.port}`)
    expect(refusal(await get(`http://localhost:${internal.port}/`, ["localhost"]))).toContain("loopback")
    expect(internalHits).toEqual([])
  })

  test("an allowed name whose DNS answer is special is refused, for every special range and form", async () => {
    const answers: Record<string, string> = {
      "10.1.2.3": "private",
      "172.20.0.1": "private",
      "192.168.1.1": "private",
      "100.64.0.1": "shared (CGNAT)",
      "169.254.169.254": "link-local",
      "0.0.0.0": "unspecified",
      "224.0.0.1": "multicast",
      "255.255.255.255": "reserved",
      "127.0.0.1": "loopback",
      "::1": "loopback",
      "::": "unspecified",
      "fe80::1": "link-local",
      "fd12:3456::1": "private",
      "ff02::1": "multicast",
      "::ffff:127.0.0.1": "loopback",
      "::ffff:7f00:1": "loopback",
      "::ffff:169.254.169.254": "link-local",
      "::127.0.0.1": "loopback",
      "64:ff9b::a00:1": "private",
      "2002:c0a8:101::1": "private",
      // Teredo: the client's IPv4 is the last 32 bits inverted (127.0.0.1 → 80ff:fffe).
      "2001:0:4136:e378:8000:63bf:80ff:fffe": "loopback"
    }
    for (const [address, range] of Object.entries(answers)) {
      const { resolve } = resolverOf({ "api.example.test": [address] })
      const message = refusal(await get("http://api.example.test/", ["api.example.test"], resolve))
      expect(`${address}: ${message}`).toContain(`resolves to ${address}, a ${range} address`)
    }
  })

  test("one special address among public ones is enough to refuse", async () => {
    const { resolve } = resolverOf({ "mixed.example.test": ["93.184.216.34", "10.0.0.7"] })
    expect(refusal(await get("http://mixed.example.test/", ["mixed.example.test"], resolve))).toContain("10.0.0.7, a private address")
  })

  test("a redirect to an allowed name that resolves to loopback is refused at that hop", async () => {
    internalHits = []
    const { resolve, calls } = resolverOf({ "internal.example.test": ["127.0.0.1"] })
    const to = `http://internal.example.test:${internal.port}/secret`
    const message = refusal(await get(`http://127.0.0.1:${outer.port}/?to=${encodeURIComponent(to)}`, [`127.0.0.1:${outer.port}`, "internal.example.test"], resolve))
    expect(message).toContain("loopback")
    expect(calls).toEqual(["internal.example.test"])
    expect(internalHits).toEqual([])
  })

  test("allow-listing the address itself (with its port) opens exactly that address and port", async () => {
    internalHits = []
    const { resolve } = resolverOf({ "svc.example.test": ["127.0.0.1"] })
    const ok = await get(`http://svc.example.test:${internal.port}/x`, ["svc.example.test", `127.0.0.1:${internal.port}`], resolve)
    expect(Either.getOrThrow(ok).output).toContain("internal secrets")
    // The same address on another port is still refused.
    expect(refusal(await get(`http://svc.example.test:${outer.port}/x`, ["svc.example.test", `127.0.0.1:${internal.port}`], resolve))).toContain("loopback")
    expect(internalHits).toEqual([`svc.example.test:${internal.port} /x`])
  })

  test("http: the request goes to the checked address, with the name only in Host (no second resolution)", async () => {
    internalHits = []
    // The system resolver does not know this name: the call can only succeed by connecting to the checked address.
    const { resolve, calls } = resolverOf({ "pinned.example.test": ["127.0.0.1"] })
    const ok = await get(`http://pinned.example.test:${internal.port}/pinned`, ["pinned.example.test", `127.0.0.1:${internal.port}`], resolve)
    expect(Either.getOrThrow(ok).output).toContain("internal secrets")
    expect(calls).toEqual(["pinned.example.test"])
    expect(internalHits).toEqual([`pinned.example.test:${internal.port} /pinned`])
  })

  test("https: the connection goes to the checked address, and the certificate is verified for the name", async () => {
    const tls = { cert: Bun.file(join(ROOT, "test/support/tls/pinned.test.cert.pem")), key: Bun.file(join(ROOT, "test/support/tls/pinned.test.key.pem")) }
    const seen: Array<string> = []
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls,
      fetch: (req) => {
        seen.push(req.headers.get("host") ?? "")
        return new Response("over tls")
      }
    })
    try {
      // In a process of its own, so the test certificate can be trusted there (NODE_EXTRA_CA_CERTS) and only there.
      const run = async (url: string, allow: string) => {
        const child = await spawnUntil(
          [process.execPath, join(ROOT, "test/support/httpGetChild.ts"), url, allow],
          { ...process.env, NODE_EXTRA_CA_CERTS: join(ROOT, "test/support/tls/pinned.test.cert.pem"), TAPE_TEST_RESOLVE: JSON.stringify({ "pinned.test": ["127.0.0.1"], "other.test": ["127.0.0.1"] }) },
          /^\{.*\}$/m
        )
        await child.stop()
        return JSON.parse(child.match[0]) as { ok: boolean; output?: string; error?: string }
      }
      const ok = await run(`https://pinned.test:${server.port}/`, `pinned.test,127.0.0.1:${server.port}`)
      expect(ok).toEqual({ ok: true, output: "HTTP 200 OK\ncontent-type: text/plain;charset=utf-8\n\nover tls" })
      expect(seen).toEqual([`pinned.test:${server.port}`])
      // Same address, another name: its certificate does not name other.test, so the call fails.
      const wrong = await run(`https://other.test:${server.port}/`, `other.test,127.0.0.1:${server.port}`)
      expect(wrong.ok).toBe(false)
      expect(wrong.error).toContain("ERR_TLS_CERT_ALTNAME_INVALID")
    } finally {
      server.stop(true)
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Finding 9: read_file / list_files against a folder that flips between a real folder and a symlink out

describe("read_file and list_files read only what they checked", () => {
  test("a folder flipping to a symlink outside never yields what is outside (bounded, seeded)", async () => {
    const base = mkdtempSync(join(tmpdir(), "tape-flip-"))
    try {
      const workspace = join(base, "workspace")
      const outside = join(base, "outside")
      mkdirSync(join(workspace, "flip"), { recursive: true })
      mkdirSync(outside)
      writeFileSync(join(workspace, "flip", "passwd"), "the workspace copy\n")
      writeFileSync(join(outside, "passwd"), "root:SECRET:0:0\n")
      writeFileSync(join(outside, "only-outside.txt"), "x")
      const read = makeReadFileTool(workspace)
      const list = makeListFilesTool(workspace)
      const flipper = await spawnUntil([process.execPath, join(ROOT, "test/support/flipper.ts"), join(workspace, "flip"), outside], process.env, /flipping/)
      const seed = Number(process.env.FLIP_SEED ?? 9)
      const iterations = Number(process.env.FLIP_ITERATIONS ?? 3000)
      console.log(`flip race seed ${seed}, ${iterations} iterations (FLIP_SEED / FLIP_ITERATIONS to change)`)
      const random = seededRandom(seed)
      const leaks: Array<string> = []
      const outcomes = { read: 0, listed: 0, refused: 0, caughtAfterOpen: 0 }
      try {
        for (let i = 0; i < iterations && leaks.length === 0; i++) {
          const result =
            random() < 0.5
              ? await Effect.runPromise(read.run({ path: "flip/passwd" }).pipe(Effect.either))
              : await Effect.runPromise(list.run({ path: "flip" }).pipe(Effect.either))
          if (Either.isLeft(result)) {
            outcomes.refused += 1
            if (result.left.message.includes("changed while it was opened")) outcomes.caughtAfterOpen += 1
            continue
          }
          const { output } = result.right
          if (output.includes("SECRET") || output.includes("only-outside")) leaks.push(`iteration ${i}: ${output}`)
          if (output.includes("workspace copy")) outcomes.read += 1
          if (output === "passwd") outcomes.listed += 1
        }
      } finally {
        await flipper.stop("SIGKILL")
      }
      console.log(`outcomes: ${JSON.stringify(outcomes)}`)
      expect(leaks).toEqual([])
      // The race was run, not skipped: the flipper flipped, and calls both succeeded and were refused.
      expect(outcomes.read + outcomes.listed).toBeGreaterThan(0)
      expect(outcomes.refused).toBeGreaterThan(0)
    } finally {
      rmSync(base, { recursive: true, force: true })
    }
  })
})
