// The tape CLI run as a process (Bun.spawn): replay of a fixture (text and --json), --at, a broken tape, bad arguments.
import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { tapePath } from "./support/tapes.ts"

const root = join(import.meta.dir, "..")
const dir = mkdtempSync(join(tmpdir(), "tape-cli-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const tapeCli = async (...args: ReadonlyArray<string>) => {
  const proc = Bun.spawn([process.execPath, join(root, "src/cli/tape.ts"), ...args], { cwd: root, stdout: "pipe", stderr: "pipe" })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { stdout, stderr, code }
}

describe("tape replay", () => {
  test("prints the three projections of a fixture, readably", async () => {
    const r = await tapeCli("replay", tapePath("approval-pending"))
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const lines = r.stdout.split("\n")
    expect(lines[0]).toBe("Tape approval-pending — at seq 6 of 6")
    for (const header of ["== Chat (UI view) ==", "== LLM memory ==", "== Summary =="]) expect(lines).toContain(header)
    expect(lines).toContain("user: Delete the temp files")
    expect(lines).toContain("assistant: I will run:")
    expect(lines).toContain('  [eval pending] {"code":"cleanup()"}')
    expect(lines).toContain("phase: awaiting_approval")
    expect(lines).toContain("pending approvals: call-5 (eval)")
    expect(lines).toContain("allowed: send, approve, reject, interrupt")
    expect(lines).toContain("[user] Delete the temp files")
    expect(lines).toContain("  [tool_result call-5] [Not run: awaiting the user's approval]")
    expect(lines).toContain("pendingApprovals: 1")
    expect(lines).toContain('tokens: {"input":5,"output":5}')
  })

  test("interrupted text and queued messages are marked", async () => {
    const streaming = await tapeCli("replay", tapePath("interrupt-while-streaming"))
    expect(streaming.stdout).toContain("assistant (interrupted): The history of computing begins  — too long")
    expect(streaming.stdout).toContain("[assistant] The history of computing begins\n  [This reply was interrupted (too long); the text above is partial.]")
    const queued = await tapeCli("replay", tapePath("queued-after-stream"), "--at", "6")
    expect(queued.stdout.split("\n")).toEqual(expect.arrayContaining(["assistant (streaming): Once upon", "queued: make it short", "queued: and funny", "phase: streaming"]))
    expect(queued.stdout).not.toContain("[user] make it short")
  })

  test("--json gives the projections as data; --at folds a prefix", async () => {
    const r = await tapeCli("replay", tapePath("restart-recovery"), "--at", "8", "--json")
    expect(r.code).toBe(0)
    const out: unknown = JSON.parse(r.stdout)
    expect(out).toMatchObject({
      session: "restart-recovery",
      at: 8,
      head: 10,
      ui: { phase: "streaming", calls: { "call-5": { status: "running" }, "call-7": { status: "pending" } } },
      memory: { messages: [{ role: "user", text: "Read a file and run code" }, { role: "assistant", turnId: "turn-3", text: "Working on it" }] },
      summary: { head: 8, pendingApprovals: 1, phase: "streaming" }
    })
  })

  test("a malformed tape: a clear error naming the line, non-zero exit, nothing on stdout", async () => {
    const file = join(dir, "broken.jsonl")
    writeFileSync(
      file,
      [
        '{"session":"s","seq":1,"at":1,"by":"system","type":"SessionCreated"}',
        "",
        '{"session":"s","seq":2,"at":2,"by":"user:a","type":"UserMessageAdded","text":"no id"}'
      ].join("\n")
    )
    const r = await tapeCli("replay", file)
    expect(r.code).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr).toBe(`tape: ${file}: line 3: invalid UserMessageAdded: messageId: is missing\n`)
    const json = join(dir, "notjson.jsonl")
    writeFileSync(json, '{"session":"s","seq":1,"at":1,"by":"system","type":"SessionCreated"}\n{oops\n')
    const bad = await tapeCli("replay", json, "--json")
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain("line 2: not valid JSON")
  })

  test("bad arguments print the usage and exit 2; a missing file exits 1", async () => {
    const cases: ReadonlyArray<ReadonlyArray<string>> = [
      [],
      ["play", "x.jsonl"],
      ["replay"],
      ["replay", tapePath("plain-chat"), "--at", "zero"],
      ["replay", tapePath("plain-chat"), "--at", "99"],
      ["replay", "a", "b"]
    ]
    const results = await Promise.all(cases.map((args) => tapeCli(...args)))
    results.forEach((r, i) => {
      expect({ args: cases[i], code: r.code, stdout: r.stdout }).toEqual({ args: cases[i], code: 2, stdout: "" })
      expect(r.stderr).toStartWith("tape: ")
    })
    const usage = await tapeCli("replay")
    expect(usage.stderr).toContain("usage: npm run tape -- replay <file.jsonl> [--at <seq>] [--json]")
    const missing = await tapeCli("replay", join(dir, "nope.jsonl"))
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain("cannot read")
    const help = await tapeCli("--help")
    expect(help.code).toBe(0)
    expect(help.stdout).toContain("usage:")
  })
})
