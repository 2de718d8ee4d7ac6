// read_file and list_files over a temporary workspace: normal use works, every way out is refused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { makeListFilesTool, makeReadFileTool } from "../src/tools/files.ts"
import type { ToolOutput } from "../src/tools/Tool.ts"

let base = ""
let workspace = ""

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), "tape-files-"))
  workspace = join(base, "workspace")
  mkdirSync(join(workspace, "notes", "deep"), { recursive: true })
  writeFileSync(join(workspace, "hello.txt"), "hello, workspace\n")
  writeFileSync(join(workspace, "notes", "a.md"), "# A\n")
  writeFileSync(join(workspace, "notes", "deep", "b.md"), "# B\n")
  writeFileSync(join(workspace, "big.txt"), "y".repeat(10_000))
  writeFileSync(join(workspace, "blob.bin"), new Uint8Array([1, 0, 2, 0]))
  writeFileSync(join(base, "secret.txt"), "top secret")
  mkdirSync(join(base, "outside"))
  writeFileSync(join(base, "outside", "x.txt"), "outside")
  symlinkSync(join(base, "secret.txt"), join(workspace, "link-out.txt"))
  symlinkSync(join(base, "outside"), join(workspace, "dir-out"))
  symlinkSync(join(workspace, "hello.txt"), join(workspace, "link-in.txt"))
  symlinkSync("/etc/passwd", join(workspace, "passwd"))
})

afterAll(() => rmSync(base, { recursive: true, force: true }))

const read = (path: string, maxReadBytes?: number): Promise<Either.Either<ToolOutput, string>> =>
  Effect.runPromise(
    makeReadFileTool(workspace, maxReadBytes === undefined ? {} : { maxReadBytes })
      .run({ path })
      .pipe(Effect.mapError((error) => error.message), Effect.either)
  )

const list = (path?: string, maxEntries?: number): Promise<Either.Either<ToolOutput, string>> =>
  Effect.runPromise(
    makeListFilesTool(workspace, maxEntries === undefined ? {} : { maxEntries })
      .run(path === undefined ? {} : { path })
      .pipe(Effect.mapError((error) => error.message), Effect.either)
  )

const refused = (result: Either.Either<ToolOutput, string>): string => {
  if (Either.isRight(result)) throw new Error(`expected a refusal, got output: ${result.right.output}`)
  return result.left
}

describe("read_file", () => {
  test("reads a file and a nested file", async () => {
    expect(await read("hello.txt")).toEqual(Either.right({ output: "hello, workspace\n", truncated: false }))
    expect(await read("notes/deep/b.md")).toEqual(Either.right({ output: "# B\n", truncated: false }))
    expect(await read("./notes/a.md")).toEqual(Either.right({ output: "# A\n", truncated: false }))
  })

  test("a symlink that stays inside the workspace is followed", async () => {
    expect(await read("link-in.txt")).toEqual(Either.right({ output: "hello, workspace\n", truncated: false }))
  })

  test("caps the size and marks the output truncated", async () => {
    expect(await read("big.txt", 100)).toEqual(Either.right({ output: "y".repeat(100), truncated: true }))
    expect(await read("big.txt", 10_000)).toEqual(Either.right({ output: "y".repeat(10_000), truncated: false }))
  })

  test("binary files are described, not dumped", async () => {
    expect(await read("blob.bin")).toEqual(Either.right({ output: "(binary file, 4 bytes, not shown)", truncated: false }))
  })

  test("refuses .. escapes, even ones that would land back inside", async () => {
    expect(refused(await read("../secret.txt"))).toContain('contains ".."')
    expect(refused(await read("notes/../../secret.txt"))).toContain('contains ".."')
    expect(refused(await read("notes/../hello.txt"))).toContain('contains ".."')
    expect(refused(await read("..\\secret.txt"))).toContain('contains ".."')
  })

  test("refuses absolute paths", async () => {
    expect(refused(await read(join(base, "secret.txt")))).toContain("is absolute")
    expect(refused(await read("/etc/passwd"))).toContain("is absolute")
    expect(refused(await read("C:\\Windows\\win.ini"))).toContain("is absolute")
  })

  test("refuses symlinks that resolve outside, to a file or through a folder", async () => {
    expect(refused(await read("link-out.txt"))).toContain("outside the workspace folder")
    expect(refused(await read("passwd"))).toContain("outside the workspace folder")
    expect(refused(await read("dir-out/x.txt"))).toContain("outside the workspace folder")
  })

  test("refuses NUL bytes, folders and missing files with clear errors", async () => {
    expect(refused(await read("hello.txt\0.png"))).toContain("NUL")
    expect(refused(await read("notes"))).toContain("use list_files")
    expect(refused(await read("missing.txt"))).toContain("no such file or folder: missing.txt")
  })

  test("a FIFO is refused without hanging the open", async () => {
    const own = join(base, "with-fifo")
    mkdirSync(own)
    const made = Bun.spawnSync(["mkfifo", join(own, "pipe")])
    if (made.exitCode !== 0) return console.log("mkfifo is not available: FIFO case skipped")
    const result = await Effect.runPromise(makeReadFileTool(own).run({ path: "pipe" }).pipe(Effect.mapError((error) => error.message), Effect.either))
    expect(refused(result)).toContain("not a regular file")
  })

  test("a missing workspace folder is reported as such", async () => {
    const result = await Effect.runPromise(
      makeReadFileTool(join(base, "nope")).run({ path: "a.txt" }).pipe(Effect.mapError((error) => error.message), Effect.either)
    )
    expect(refused(result)).toContain("the workspace folder does not exist")
  })
})

describe("list_files", () => {
  test("lists the root, sorted, folders with / and symlinks with @", async () => {
    expect(await list()).toEqual(
      Either.right({
        output: ["big.txt", "blob.bin", "dir-out@", "hello.txt", "link-in.txt@", "link-out.txt@", "notes/", "passwd@"].join("\n"),
        truncated: false
      })
    )
  })

  test("lists a sub-folder and caps the entries", async () => {
    expect(await list("notes")).toEqual(Either.right({ output: "a.md\ndeep/", truncated: false }))
    expect(await list(".", 2)).toEqual(Either.right({ output: "big.txt\nblob.bin", truncated: true }))
  })

  test("refuses .., absolute paths and symlinked folders outside", async () => {
    expect(refused(await list(".."))).toContain('contains ".."')
    expect(refused(await list(base))).toContain("is absolute")
    expect(refused(await list("dir-out"))).toContain("outside the workspace folder")
  })

  test("listing a file is an error, not its content", async () => {
    expect(refused(await list("hello.txt"))).toContain("cannot list hello.txt")
  })
})
