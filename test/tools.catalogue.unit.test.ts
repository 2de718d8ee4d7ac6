// The catalogue: check (what the session writer trusts), specs for the prompt, policies and config, run.
import { describe, expect, test } from "bun:test"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Either } from "effect"
import { makeCatalogue, toolNames } from "../src/tools/catalogue.ts"

const catalogue = makeCatalogue({ workspace: "./workspace", httpAllow: ["example.com"] })

describe("check", () => {
  test("valid args come back canonical, with the default policy", () => {
    expect(catalogue.check("eval", { code: "1 + 1" })).toEqual({ ok: true, args: { code: "1 + 1" }, policy: "ask" })
    expect(catalogue.check("read_file", { path: "a.txt" })).toEqual({ ok: true, args: { path: "a.txt" }, policy: "auto" })
    expect(catalogue.check("list_files", {})).toEqual({ ok: true, args: {}, policy: "auto" })
    expect(catalogue.check("http_get", { url: "https://example.com" })).toEqual({
      ok: true,
      args: { url: "https://example.com" },
      policy: "ask"
    })
  })

  test("an unknown tool names the known ones", () => {
    expect(catalogue.check("rm_rf", {})).toEqual({
      ok: false,
      error: 'unknown tool "rm_rf"; known tools: eval, read_file, list_files, http_get'
    })
  })

  test("bad args give a bounded description (path and expectation), never the value itself", () => {
    const wrongType = catalogue.check("eval", { code: 42 })
    expect(wrongType.ok).toBe(false)
    expect(!wrongType.ok && wrongType.error).toBe("invalid args for eval: code: expected string")
    const missing = catalogue.check("read_file", {})
    expect(!missing.ok && missing.error).toBe("invalid args for read_file: path: is missing")
    const extra = catalogue.check("eval", { code: "1", sneaky: true })
    expect(!extra.ok && extra.error).toBe("invalid args for eval: sneaky: is unexpected")
    const notObject = catalogue.check("eval", "1 + 1")
    expect(!notObject.ok && notObject.error).toBe("invalid args for eval: expected { readonly code: string }")
    // A huge or deeply nested value costs a short message, not a rendering of the value (issue 10, finding 2).
    let deep: unknown = "leaf"
    for (let i = 0; i < 20_000; i++) deep = [deep]
    const nested = catalogue.check("eval", { code: deep })
    expect(!nested.ok && nested.error).toBe("invalid args for eval: code: expected string")
    const huge = catalogue.check("eval", { code: 1, ["k".repeat(10_000)]: "v".repeat(1_000_000) })
    expect(!huge.ok && huge.error.length).toBeLessThan(700)
    expect(!huge.ok && huge.error).not.toContain("vvvv")
  })

  test("configured policies override the defaults", () => {
    const custom = makeCatalogue({ workspace: ".", httpAllow: [], policies: { eval: "auto", read_file: "ask" } })
    expect(custom.check("eval", { code: "1" })).toMatchObject({ ok: true, policy: "auto" })
    expect(custom.check("read_file", { path: "x" })).toMatchObject({ ok: true, policy: "ask" })
    const allowed = makeCatalogue({ workspace: ".", httpAllow: ["example.com"] })
    expect(allowed.check("http_get", { url: "x" })).toMatchObject({ ok: true, policy: "ask" })
  })

  test("a tool that cannot work with the settings is not offered, and a call to it says why", () => {
    const noHosts = makeCatalogue({ workspace: ".", httpAllow: [] })
    expect(noHosts.specs().map((s) => s.name)).not.toContain("http_get")
    expect(noHosts.check("http_get", { url: "http://example.com/" })).toEqual({
      ok: false,
      error: "http_get cannot be used now: no host is allowed: set TAPE_HTTP_ALLOW (or builtins.http_get.allow in the config)"
    })
    expect(noHosts.list().tools.find((t) => t.name === "http_get")).toMatchObject({ offered: false, source: "builtin" })
  })

  test("the workspace folder is made on first start, so the file tools work out of the box", () => {
    const root = mkdtempSync(join(tmpdir(), "tape-workspace-"))
    try {
      const fresh = makeCatalogue({ workspace: join(root, "workspace"), httpAllow: [] })
      expect(existsSync(join(root, "workspace"))).toBe(true)
      expect(fresh.specs().map((s) => s.name)).toEqual(["eval", "read_file", "list_files"])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })
})

describe("specs", () => {
  test("every tool that can work, with a description and its args' JSON Schema for the model", () => {
    const specs = makeCatalogue({ workspace: ".", httpAllow: ["example.com"] }).specs()
    expect(specs.map((spec) => spec.name)).toEqual([...toolNames])
    expect(specs.find((spec) => spec.name === "read_file")?.parameters).toMatchObject({
      type: "object",
      required: ["path"],
      properties: { path: { type: "string", description: "file path relative to the workspace folder" } }
    })
    for (const spec of specs) expect(spec.description.length).toBeGreaterThan(10)
  })
})

const ctx = { session: "s", callId: "call-1" }

describe("run", () => {
  test("runs a tool by name; unknown tools and bad args fail as ToolError", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tape-catalogue-"))
    try {
      writeFileSync(join(dir, "note.txt"), "noted")
      const local = makeCatalogue({ workspace: dir, httpAllow: [] })
      expect(await Effect.runPromise(local.run("read_file", { path: "note.txt" }, ctx))).toEqual({ output: "noted", truncated: false })
      expect(await Effect.runPromise(local.run("eval", { code: "2 ** 10" }, ctx))).toEqual({ output: "=> 1024", truncated: false })
      const unknown = await Effect.runPromise(Effect.either(local.run("nope", {}, ctx)))
      expect(Either.isLeft(unknown) && unknown.left.message).toContain("known tools: eval")
      const bad = await Effect.runPromise(Effect.either(local.run("read_file", { path: 1 }, ctx)))
      expect(Either.isLeft(bad) && bad.left.message).toContain("invalid args for read_file")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
